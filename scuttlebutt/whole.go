package scuttlebutt

// WholeValidator is a Validator that checks the whole of an update's Data
// itself. Besides what the type refuses of its own, its ValidateUpdate
// refuses every Data that is not exactly one well-formed CBOR item as
// Update.Data must be, everything the base would refuse itself: no tags,
// no indefinite lengths, no reserved simple values, text in UTF-8, arrays
// and maps nested at most MaxNesting deep (the outermost item counts as
// one), nothing cut short and no bytes after the item. It then sees any
// bytes a peer sends, and must refuse them without panic.
//
// When the replica implements it, the base leaves that scan of Data to
// ValidateUpdate instead of making it first, in Apply, in a Link's Step
// and in LocalUpdate: a type whose validator parses the payload anyway
// (package model's does) saves a second scan of every update it receives.
// ValidatesWhole does nothing; the base never calls it. A type that is not
// sure its validator refuses all of the above must not implement it: what
// the validator lets through is applied and passed on to every peer.
type WholeValidator interface {
	Validator
	// ValidatesWhole marks the Validator as one that checks Data whole.
	ValidatesWhole()
}
