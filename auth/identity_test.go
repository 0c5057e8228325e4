package auth

import (
	"reflect"
	"testing"

	"github.com/deploybot/deploybot/config"
)

func TestIdentify(t *testing.T) {
	cfg := &config.Config{Identities: config.Identities{
		Users: []config.UserMapping{
			{Platform: "terminal", ID: "alice", User: "alice", Groups: []string{"packit-devs"}},
			{Platform: "slack", ID: "T1/U1", User: "alice", Groups: []string{"packit-devs"}},
			{Platform: "slack", ID: "T1/U2", User: "bob"},
			{Platform: "discord", ID: "42", User: "carol", Groups: []string{"packit-viewers"}},
			{Platform: "discord", ID: "G9/43", User: "dave"},
		},
		Groups: []config.GroupMapping{
			{Platform: "slack", ID: "S-admins", Groups: []string{"packit-admins"}},
			{Platform: "slack", ID: "S-devs", Groups: []string{"packit-devs", "packit-oncall"}},
			{Platform: "discord", ID: "R-admins", Groups: []string{"packit-admins"}},
		},
	}}
	tests := []struct {
		name       string
		platform   string
		chatID     string
		chatGroups []string
		want       Identity
		wantOK     bool
	}{
		{"terminal user", "terminal", "alice", nil, Identity{User: "alice", Groups: []string{"packit-devs"}}, true},
		{"unmapped user", "terminal", "mallory", nil, Identity{}, false},
		{"same ID on another platform", "discord", "alice", nil, Identity{}, false},
		{"empty ID", "terminal", "", nil, Identity{}, false},
		{"chat groups add groups, without duplicates", "slack", "T1/U1", []string{"S-devs", "S-admins", "S-unknown"},
			Identity{User: "alice", Groups: []string{"packit-devs", "packit-admins", "packit-oncall"}}, true},
		{"chat groups of another platform do not count", "slack", "T1/U2", []string{"R-admins"}, Identity{User: "bob"}, true},
		{"mapped chat group alone does not identify", "slack", "T1/U9", []string{"S-admins"}, Identity{}, false},
		{"discord bare user ID matches in any guild", "discord", "G1/42", []string{"R-admins"},
			Identity{User: "carol", Groups: []string{"packit-viewers", "packit-admins"}}, true},
		{"discord bare user ID", "discord", "42", nil, Identity{User: "carol", Groups: []string{"packit-viewers"}}, true},
		{"discord guild-qualified mapping", "discord", "G9/43", nil, Identity{User: "dave"}, true},
		{"discord guild-qualified mapping is per guild", "discord", "G8/43", nil, Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Identify(cfg, tt.platform, tt.chatID, tt.chatGroups)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Identify = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestIdentifyExampleConfig(t *testing.T) {
	cfg, err := config.Load("../examples/packit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		chatID string
		want   Identity
	}{
		{"alice", Identity{User: "alice", Groups: []string{"packit-devs"}}},
		{"bob", Identity{User: "bob", Groups: []string{"packit-admins"}}},
		{"carol", Identity{User: "carol", Groups: []string{"packit-viewers"}}},
	}
	for _, tt := range tests {
		got, ok := Identify(cfg, "terminal", tt.chatID, nil)
		if !ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Identify(terminal, %s) = %+v, %v; want %+v", tt.chatID, got, ok, tt.want)
		}
	}
}
