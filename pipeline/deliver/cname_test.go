package deliver

import (
	"context"
	"errors"
	"testing"
)

func TestLookupCNAME(t *testing.T) {
	_, r := newTestResolver(t)
	tests := []struct {
		name      string
		want      string
		temporary bool
		enhanced  [3]int // zero: success expected
	}{
		{name: "alias.test", want: "example.test"},
		{name: "ALIAS.test.", want: "example.test"},
		{name: "example.test", want: ""}, // no CNAME: not an error
		{name: "nx.test", enhanced: [3]int{5, 1, 2}},
		{name: "fail.test", temporary: true, enhanced: [3]int{4, 4, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupCNAME(context.Background(), tt.name)
			if tt.enhanced == [3]int{} {
				if err != nil || got != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Temporary != tt.temporary || de.Enhanced != tt.enhanced {
				t.Fatalf("got %q, %v; want error %v", got, err, tt.enhanced)
			}
		})
	}
}
