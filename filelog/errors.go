package filelog

import "errors"

// Errors returned by this package. Callers test for them with errors.Is;
// the errors Open and Log's methods return wrap them with the file name, the
// offset and the cause.
var (
	// ErrCorrupt means the log holds damage a crash cannot explain: a bad
	// file header, or a record that fails its checksum or does not decode
	// while more data follows it. Open refuses such a log and changes
	// nothing, unless Config.Repair is set.
	ErrCorrupt = errors.New("filelog: corrupt log")
	// ErrWrongReplica means the log was written by a replica with another
	// id than the document it is opened for.
	ErrWrongReplica = errors.New("filelog: log belongs to another replica")
	// ErrVersion means the log was written in a format version this
	// package does not read.
	ErrVersion = errors.New("filelog: unsupported format version")
	// ErrLocked means another Log, in this process or another, has the
	// file open.
	ErrLocked = errors.New("filelog: log is in use")
	// ErrTooLarge means an update's record would exceed
	// Config.MaxRecordSize; nothing of the batch was appended.
	ErrTooLarge = errors.New("filelog: record too large")
	// ErrFailed means a write or fsync of the log failed. The log accepts
	// nothing more: what was not durable before the failure never will be
	// through this Log. The error also wraps the cause (for example
	// syscall.ENOSPC). Close the Log and Open the file again to go on.
	ErrFailed = errors.New("filelog: log failed")
	// ErrClosed means the Log has been closed. Writes to a document whose
	// log is closed fail with it until another storage is attached.
	ErrClosed = errors.New("filelog: log closed")
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("filelog: invalid config")
)
