package doc

import "errors"

// Errors returned by this package. Patch returns them wrapped with the op
// that failed; test for them with errors.Is. A Patch that returns an error
// has changed nothing. A peer's update that the Validator refuses ends its
// session with scuttlebutt.ErrInvalidUpdate wrapping one of these.
var (
	// ErrInvalidPath means a path is not a JSON Pointer (RFC 6901): it is
	// neither empty nor starts with "/", has a "~" not followed by "0" or
	// "1", or is not UTF-8. Writes are also refused through an array
	// element ("/list/0/name"): array elements are read by index, and
	// written by setting, pushing to or pulling from the array.
	ErrInvalidPath = errors.New("doc: invalid path")
	// ErrInvalidValue means a value cannot be replicated (a type CBOR and
	// JSON cannot both carry, a NaN or infinity, an integer beyond int64),
	// an Inc by NaN or infinity, or a counter whose total would overflow.
	// From a peer, it means a malformed payload.
	ErrInvalidValue = errors.New("doc: invalid value")
	// ErrNotObject means Set of the root ("") with a value that is not an
	// object: the root is always an object.
	ErrNotObject = errors.New("doc: root must be an object")
	// ErrNotNumber means Inc of a path that holds something other than a
	// number (a string, an array, an object...), or of the root.
	ErrNotNumber = errors.New("doc: not a number")
	// ErrNotArray means Push or Pull of a path that holds something other
	// than an array, or of the root.
	ErrNotArray = errors.New("doc: not an array")
	// ErrTooDeep means a write would reach deeper than MaxDepth: a path of
	// more than MaxDepth segments, or a value nested too deep for its path.
	ErrTooDeep = errors.New("doc: too deep")
	// ErrTooLarge means a patch has more than MaxOps ops, or its update
	// would be larger than Config.MaxUpdateSize (1 MiB by default). A Set
	// or Unset carries the totals of every counter below its path (see
	// Counters in the package doc), so resetting a path with very many
	// counters below it can be too large too.
	ErrTooLarge = errors.New("doc: patch too large")
)
