package failpoint

import "testing"

func TestArmHitDisarm(t *testing.T) {
	var got []string
	Hit(Attempt, "before arming") // nothing armed: nothing runs
	disarm := Arm(Attempt, func(detail string) { got = append(got, detail) })
	Hit(Attempt, "a")
	Hit(AfterCommit, "other point")
	disarm()
	Hit(Attempt, "after disarming")
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("actions ran for %q, want only [a]", got)
	}
	if armed.Load() != nil {
		t.Error("the last disarm left a map behind: Hit pays a lookup for nothing")
	}
}
