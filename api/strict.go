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

// jsonBounds is the shape a request body may have, checked on its bytes
// before anything decodes it (strictjson.Check): no route reads JSON
// deeper than a few levels, nor more than 1,000 elements in one array or
// object (a sends batch's recipients, a template's variables). A body past
// them is a 400 naming where ("to: more than 10000 elements"), refused
// for the cost of reading it, where decoding it first would have made
// hundreds of bytes of Go values of each element: a 2 MB array of a
// million {} as attachments took 800 MB. The total bounds many containers
// each under the width: the most the routes' limits allow (a sends batch's
// 1,000 recipients of 1,000 personalizations, with their other fields)
// fits; 35 MB of them (six million) does not.
var jsonBounds = strictjson.Bounds{Depth: 32, Elements: 10_000, Total: 1_500_000}

// checkShape refuses a JSON body past jsonBounds.
func checkShape(body []byte) error {
	if msg := strictjson.Check(body, jsonBounds); msg != "" {
		return pipeline.ErrInvalid.With(msg)
	}
	return nil
}
