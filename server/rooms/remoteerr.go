package rooms

import "fmt"

// RemoteError is another server's refusal, with a 4xx answer other than 403 and 404 (those
// are ErrForbidden and ErrNotFound), of a request this server made for a client: an invite
// its server will not countersign, say, because it does not support the room's version. The
// client API answers 400 with the other server's errcode, as Synapse does, rather than 500;
// other statuses become 502, since a client must not mistake the other server's 401 for its
// own.
type RemoteError struct {
	// Server is the server that refused.
	Server string
	// Status is its HTTP status.
	Status int
	// Code is its errcode, e.g. M_INCOMPATIBLE_ROOM_VERSION; empty if it sent none.
	Code string
	// Message is its error message.
	Message string
	// Err is the transport's error.
	Err error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("rooms: %s refused: %d %s %s", e.Server, e.Status, e.Code, e.Message)
}

func (e *RemoteError) Unwrap() error { return e.Err }
