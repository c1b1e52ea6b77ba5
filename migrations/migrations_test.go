package migrations

import (
	"strings"
	"testing"
)

func TestSetsAreOrderedAndNonEmpty(t *testing.T) {
	for name, set := range map[string][]Migration{"core": Core(), "dev": Dev()} {
		if len(set) == 0 {
			t.Fatalf("%s: no migrations embedded", name)
		}
		for i, m := range set {
			if !strings.HasPrefix(m.Name, name+"/") {
				t.Errorf("%s: migration %q outside its set", name, m.Name)
			}
			if strings.TrimSpace(m.SQL) == "" {
				t.Errorf("%s: %s is empty", name, m.Name)
			}
			if i > 0 && set[i-1].Name >= m.Name {
				t.Errorf("%s: %s sorted after %s", name, m.Name, set[i-1].Name)
			}
		}
	}
}

func TestCoreRequiresBasejump(t *testing.T) {
	first := Core()[0].SQL
	if !strings.Contains(first, "to_regclass('basejump.accounts') IS NULL") || !strings.Contains(first, "RAISE EXCEPTION") {
		t.Fatalf("first core migration must refuse to run without basejump")
	}
}
