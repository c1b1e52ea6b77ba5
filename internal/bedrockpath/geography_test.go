package bedrockpath

import "testing"

func TestSplitGeography(t *testing.T) {
	tests := []struct{ id, geo, rest string }{
		{"us.anthropic.claude-3-haiku-20240307-v1:0", "us", "anthropic.claude-3-haiku-20240307-v1:0"},
		{"us-gov.anthropic.claude-3-haiku-20240307-v1:0", "us-gov", "anthropic.claude-3-haiku-20240307-v1:0"},
		{"eu.amazon.nova-pro-v1:0", "eu", "amazon.nova-pro-v1:0"},
		{"apac.amazon.nova-pro-v1:0", "apac", "amazon.nova-pro-v1:0"},
		{"jp.anthropic.x", "jp", "anthropic.x"},
		{"au.anthropic.x", "au", "anthropic.x"},
		{"global.anthropic.claude-sonnet-4-20250514-v1:0", "global", "anthropic.claude-sonnet-4-20250514-v1:0"},
		{"anthropic.claude-3-haiku-20240307-v1:0", "", "anthropic.claude-3-haiku-20240307-v1:0"},
		{"usa.model", "", "usa.model"},
		{"us.", "", "us."},
		{"US.anthropic.x", "", "US.anthropic.x"},
		{"arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.x", "", "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.x"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if geo, rest := SplitGeography(tt.id); geo != tt.geo || rest != tt.rest {
			t.Errorf("SplitGeography(%q) = %q, %q; want %q, %q", tt.id, geo, rest, tt.geo, tt.rest)
		}
	}
}

func TestGeographyOfRegion(t *testing.T) {
	tests := []struct {
		region, home string
		serves       map[string]bool
	}{
		{"us-east-1", GeoUS, map[string]bool{GeoUS: true, GeoGlobal: true, GeoEU: false, GeoUSGov: false, GeoAPAC: false}},
		{"us-west-2", GeoUS, map[string]bool{GeoUS: true}},
		{"ca-central-1", GeoUS, map[string]bool{GeoUS: true, GeoEU: false}},
		{"us-gov-west-1", GeoUSGov, map[string]bool{GeoUSGov: true, GeoUS: false}},
		{"eu-west-1", GeoEU, map[string]bool{GeoEU: true, GeoUS: false, GeoGlobal: true}},
		{"eu-central-1", GeoEU, map[string]bool{GeoEU: true}},
		{"ap-northeast-1", GeoAPAC, map[string]bool{GeoAPAC: true, GeoJP: true, GeoAU: false}},
		{"ap-northeast-3", GeoAPAC, map[string]bool{GeoJP: true}},
		{"ap-southeast-2", GeoAPAC, map[string]bool{GeoAPAC: true, GeoAU: true, GeoJP: false}},
		{"ap-southeast-1", GeoAPAC, map[string]bool{GeoAU: false, GeoJP: false}},
		{"me-central-1", GeoAPAC, map[string]bool{GeoAPAC: true}},
		{"sa-east-1", "", map[string]bool{GeoUS: false, GeoGlobal: true, "": false}},
	}
	for _, tt := range tests {
		if got := HomeGeography(tt.region); got != tt.home {
			t.Errorf("HomeGeography(%q) = %q, want %q", tt.region, got, tt.home)
		}
		for geo, want := range tt.serves {
			if got := GeographyServes(geo, tt.region); got != want {
				t.Errorf("GeographyServes(%q, %q) = %v, want %v", geo, tt.region, got, want)
			}
		}
	}
}

func TestParseARN(t *testing.T) {
	tests := []struct {
		in   string
		want ARN
		ok   bool
	}{
		{"arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/abc", ARN{"aws", "eu-west-1", "111122223333", "application-inference-profile/abc"}, true},
		{"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", ARN{"aws", "us-east-1", "", "foundation-model/anthropic.claude-3-haiku-20240307-v1:0"}, true},
		{"arn:aws-us-gov:bedrock:us-gov-west-1:1:inference-profile/us-gov.x", ARN{"aws-us-gov", "us-gov-west-1", "1", "inference-profile/us-gov.x"}, true},
		{"arn:aws:iam::111122223333:role/x", ARN{}, false},
		{"arn:aws:bedrock:us-east-1:1", ARN{}, false},
		{"arn:aws:bedrock:us-east-1:1:", ARN{}, false},
		{"anthropic.claude", ARN{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseARN(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseARN(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
