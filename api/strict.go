package api

import (
	"github.com/pigeonpost/pigeonpost/internal/strictjson"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// Request bodies are decoded strictly: a field the route does not know is
// a 400 invalid_request that names it ("tracking.open") and, when it is
// near a known one, the name meant (internal/strictjson). A typo must not
// be a silent no-op: a send whose "trackng" was dropped goes out
// untracked, and says 200.

// unknownFieldError is the 400 of a body with a field its route does not
// know; prefix places the body in the request ("emails[2].").
func unknownFieldError(raw []byte, v any, prefix string) error {
	return pipeline.ErrUnknownField.With(strictjson.Message(raw, v, prefix))
}
