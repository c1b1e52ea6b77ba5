package bedrockpath

import (
	"strings"
)

// Geography prefixes of cross-region (system-defined) inference profile ids,
// such as "eu.anthropic.claude-3-haiku-20240307-v1:0". GeoGlobal routes to
// any commercial region and is accepted from every region.
const (
	GeoGlobal = "global"
	GeoUS     = "us"
	GeoUSGov  = "us-gov"
	GeoEU     = "eu"
	GeoAPAC   = "apac"
	GeoJP     = "jp"
	GeoAU     = "au"
)

// geographies are the known prefixes, longest first so that "us-gov." is
// not read as "us".
var geographies = []string{GeoUSGov, GeoGlobal, GeoAPAC, GeoUS, GeoEU, GeoJP, GeoAU}

// SplitGeography splits a plain model id into its geography prefix and the
// rest ("us.anthropic.x" → "us", "anthropic.x"). An id without a known
// prefix, and every ARN, returns "" and the id unchanged.
func SplitGeography(modelID string) (geo, rest string) {
	if strings.HasPrefix(modelID, "arn:") {
		return "", modelID
	}
	for _, g := range geographies {
		if r, ok := strings.CutPrefix(modelID, g+"."); ok && r != "" {
			return g, r
		}
	}
	return "", modelID
}

// HomeGeography is the geography whose profiles a region's callers use by
// default, "" for a region in no known geography. Regions follow AWS's
// source-region lists for geographic cross-region inference: us-gov-* →
// us-gov; us-* and ca-* → us; eu-* → eu; ap-* and me-central-1 → apac.
func HomeGeography(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return GeoUSGov
	case strings.HasPrefix(region, "us-"), strings.HasPrefix(region, "ca-"):
		return GeoUS
	case strings.HasPrefix(region, "eu-"):
		return GeoEU
	case strings.HasPrefix(region, "ap-"), region == "me-central-1":
		return GeoAPAC
	}
	return ""
}

// GeographyServes reports whether a request in region may use a profile of
// geography geo: global everywhere, the region's home geography, jp. from
// the Japanese regions and au. from the Australian ones.
func GeographyServes(geo, region string) bool {
	switch geo {
	case GeoGlobal:
		return true
	case GeoJP:
		return region == "ap-northeast-1" || region == "ap-northeast-3"
	case GeoAU:
		return region == "ap-southeast-2" || region == "ap-southeast-4"
	case "":
		return false
	}
	return HomeGeography(region) == geo
}

// ARN is a parsed Bedrock resource ARN (arn:partition:bedrock:region:account:resource).
type ARN struct {
	Partition, Region, Account, Resource string
}

// ParseARN parses a Bedrock ARN; ok is false for anything else.
func ParseARN(s string) (ARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "bedrock" || parts[1] == "" || parts[5] == "" {
		return ARN{}, false
	}
	return ARN{Partition: parts[1], Region: parts[3], Account: parts[4], Resource: parts[5]}, true
}
