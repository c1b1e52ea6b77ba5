package plan

import (
	"path"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
)

// matchModel reports whether glob matches modelID. Plain model ids and globs
// are compared without their cross-region geography prefix ("us.", "eu.",
// "apac.", "global.", …): the plan decides which models a tier may use,
// and extproc.geography decides the geography, which ext_proc may rewrite
// after this check. ARNs are compared as they are.
func matchModel(glob, modelID string) bool {
	_, g := bedrockpath.SplitGeography(glob)
	_, m := bedrockpath.SplitGeography(modelID)
	ok, err := path.Match(g, m)
	return err == nil && ok
}
