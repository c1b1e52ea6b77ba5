package bedrock

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
)

// DefaultControlHostTemplate is the control-plane Host; {region} is replaced.
const DefaultControlHostTemplate = "bedrock.{region}.amazonaws.com"

// foundationModel is one entry of the fake model catalog.
type foundationModel struct {
	id, name, provider string
	input, output      []string
	profiles           bool // offered through cross-region inference profiles
}

// catalog is the fake's foundation models, the same in every region.
var catalog = []foundationModel{
	{"anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic", []string{"TEXT", "IMAGE"}, []string{"TEXT"}, true},
	{"anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4", "Anthropic", []string{"TEXT", "IMAGE"}, []string{"TEXT"}, true},
	{"amazon.nova-micro-v1:0", "Nova Micro", "Amazon", []string{"TEXT"}, []string{"TEXT"}, true},
	{"amazon.nova-pro-v1:0", "Nova Pro", "Amazon", []string{"TEXT", "IMAGE", "VIDEO"}, []string{"TEXT"}, true},
	{"amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2", "Amazon", []string{"TEXT"}, []string{"EMBEDDING"}, false},
	{"meta.llama3-8b-instruct-v1:0", "Llama 3 8B Instruct", "Meta", []string{"TEXT"}, []string{"TEXT"}, false},
}

// profileTime is the fixed creation time of every fake inference profile.
var profileTime = time.Date(2024, 8, 27, 0, 0, 0, 0, time.UTC)

func (c *call) modelARN(id string) string {
	return "arn:aws:bedrock:" + c.region + "::foundation-model/" + id
}

// modelJSON is a FoundationModelSummary / FoundationModelDetails.
func (c *call) modelJSON(m foundationModel) map[string]any {
	inference := []string{"ON_DEMAND"}
	if m.profiles {
		inference = append(inference, "INFERENCE_PROFILE")
	}
	return map[string]any{
		"modelArn": c.modelARN(m.id), "modelId": m.id, "modelName": m.name, "providerName": m.provider,
		"inputModalities": m.input, "outputModalities": m.output, "responseStreamingSupported": true,
		"customizationsSupported": []string{}, "inferenceTypesSupported": inference,
		"modelLifecycle": map[string]any{"status": "ACTIVE"},
	}
}

func (c *call) query() url.Values {
	q, _ := url.ParseQuery(c.r.URL.RawQuery)
	return q
}

// listFoundationModels answers ListFoundationModels (filters byProvider,
// byOutputModality, byInferenceType, byCustomizationType).
func (c *call) listFoundationModels() {
	q := c.query()
	out := []map[string]any{}
	for _, m := range catalog {
		if p := q.Get("byProvider"); p != "" && !strings.EqualFold(p, m.provider) {
			continue
		}
		if o := q.Get("byOutputModality"); o != "" && !contains(m.output, o) {
			continue
		}
		if it := q.Get("byInferenceType"); it != "" && it != "ON_DEMAND" {
			continue
		}
		if q.Get("byCustomizationType") != "" {
			continue
		}
		out = append(out, c.modelJSON(m))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"modelSummaries": out})
}

// getFoundationModel answers GetFoundationModel for an id or its ARN.
func (c *call) getFoundationModel() {
	id := c.model
	if arn, ok := bedrockpath.ParseARN(id); ok {
		res, isModel := strings.CutPrefix(arn.Resource, "foundation-model/")
		if !isModel || arn.Region != c.region {
			c.notFound("model", id)
			return
		}
		id = res
	}
	for _, m := range catalog {
		if m.id == id {
			writeJSON(c.w, http.StatusOK, map[string]any{"modelDetails": c.modelJSON(m)})
			return
		}
	}
	c.notFound("model", id)
}

// profiles are the inference profiles the caller's account sees in the
// region: the system-defined ones of the region's geography (and global
// ones), and one application profile of the caller's own account.
func (c *call) profiles() []map[string]any {
	account := accountOf(c.principal)
	ts := profileTime.Format(time.RFC3339)
	var out []map[string]any
	prof := func(id, arn, name, typ string, models []string) {
		ms := make([]map[string]any, len(models))
		for i, m := range models {
			ms[i] = map[string]any{"modelArn": c.modelARN(m)}
		}
		out = append(out, map[string]any{
			"inferenceProfileName": name, "description": "Fake " + name, "createdAt": ts, "updatedAt": ts,
			"inferenceProfileArn": arn, "inferenceProfileId": id, "models": ms, "status": "ACTIVE", "type": typ,
		})
	}
	if geo := bedrockpath.HomeGeography(c.region); geo != "" {
		for _, m := range catalog {
			if m.profiles {
				id := geo + "." + m.id
				prof(id, "arn:aws:bedrock:"+c.region+":"+account+":inference-profile/"+id, strings.ToUpper(geo)+" "+m.name, "SYSTEM_DEFINED", []string{m.id})
			}
		}
	}
	gid := "global." + catalog[1].id
	prof(gid, "arn:aws:bedrock:"+c.region+":"+account+":inference-profile/"+gid, "Global "+catalog[1].name, "SYSTEM_DEFINED", []string{catalog[1].id})
	aid := ApplicationProfileID(account)
	prof(aid, ApplicationProfileARN(c.region, account), "team profile "+account, "APPLICATION", []string{catalog[0].id})
	return out
}

// ApplicationProfileID is the id of the one application inference profile
// the fake gives each AWS account.
func ApplicationProfileID(account string) string {
	a := strings.Repeat("0", 9) + account
	return "app" + a[len(a)-9:]
}

// ApplicationProfileARN is the ARN of account's application profile in region.
func ApplicationProfileARN(region, account string) string {
	return "arn:aws:bedrock:" + region + ":" + account + ":application-inference-profile/" + ApplicationProfileID(account)
}

// listInferenceProfiles answers ListInferenceProfiles (type filter,
// maxResults/nextToken paging).
func (c *call) listInferenceProfiles() {
	q := c.query()
	typ := q.Get("type")
	if typ != "" && typ != "SYSTEM_DEFINED" && typ != "APPLICATION" {
		writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '%s' at 'typeEquals' failed to satisfy constraint: Member must satisfy enum value set: [SYSTEM_DEFINED, APPLICATION]", typ))
		return
	}
	var all []map[string]any
	for _, p := range c.profiles() {
		if typ == "" || p["type"] == typ {
			all = append(all, p)
		}
	}
	start, size := 0, 1000
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "maxResults must be between 1 and 1000"))
			return
		}
		size = n
	}
	if v := q.Get("nextToken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "page-"))
		if err != nil || n < 0 || n > len(all) {
			writeError(c.w, errf(http.StatusBadRequest, "ValidationException", "Invalid pagination token"))
			return
		}
		start = n
	}
	end := min(start+size, len(all))
	resp := map[string]any{"inferenceProfileSummaries": append([]map[string]any{}, all[start:end]...)}
	if end < len(all) {
		resp["nextToken"] = fmt.Sprintf("page-%d", end)
	}
	writeJSON(c.w, http.StatusOK, resp)
}

// getInferenceProfile answers GetInferenceProfile for an id or ARN the
// caller's account sees.
func (c *call) getInferenceProfile() {
	for _, p := range c.profiles() {
		if p["inferenceProfileId"] == c.model || p["inferenceProfileArn"] == c.model {
			writeJSON(c.w, http.StatusOK, p)
			return
		}
	}
	c.notFound("inference profile", c.model)
}

func (c *call) notFound(kind, id string) {
	writeError(c.w, errf(http.StatusNotFound, "ResourceNotFoundException", "The %s %s does not exist or you do not have access to it.", kind, id))
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
