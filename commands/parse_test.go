package commands

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

const fullDigest = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"

// parseWant is what a message must parse to: a command (compared without
// Text, which TestParseText pins), or a reply containing every fragment.
type parseWant struct {
	kind  Kind
	cmd   plan.Command
	reply []string
}

func run(c plan.Command) parseWant { return parseWant{kind: RunKind, cmd: c} }

func reply(fragments ...string) parseWant { return parseWant{kind: ReplyKind, reply: fragments} }

func TestParse(t *testing.T) {
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		input      string
		channelEnv string
		want       parseWant
	}{
		// Is this for me?
		{"empty is ignored", "", "", parseWant{kind: Ignore}},
		{"blank is ignored", "  \n\t ", "", parseWant{kind: Ignore}},
		{"prefix alone lists the commands", "/deploy", "", reply("deploybot commands", "import ENV [SERVICE...]")},
		{"empty quoted word lists the commands", `''`, "", reply("deploybot commands")},
		{"slash prefix", "/deploy status prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"bang prefix", "!deploy status prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"word prefix", "deploy status prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"bare", "status prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"case does not matter", "DEPLOY Status PROD Worker", "", run(plan.Command{Name: "status", Env: "prod", Services: []string{"packit-worker"}})},
		{"only one prefix is stripped", "deploy deploy status", "", reply(`Unknown command "deploy"`)},
		{"deployment is not the prefix", "deployment status", "", reply(`Unknown command "deployment"`)},
		{"unknown command suggests", "imprt prod", "", reply(`Unknown command "imprt". Did you mean import?`)},
		{"unknown command without a close one", "hello there", "", reply(`Unknown command "hello".`, "`help` lists the commands")},
		{"unbalanced double quote", `deny #abc123 "not now`, "", reply(`Unbalanced quotes in: deny #abc123 "not now`)},
		{"unbalanced single quote", `status 'prod`, "", reply("Unbalanced quotes in: status 'prod")},
		{"trailing backslash", `status prod \`, "", reply("A trailing backslash in")},
		{"too long", "status " + strings.Repeat("x", MaxInput), "", reply("a command is at most 4096")},
		{"-h shows the command's help", "import -h", "", reply("import: import the registry", "Usage", "--dry-run", "Examples", "Who may run it")},
		{"--help too", "undo --help", "", reply("--to-revision N", "--force")},

		// help
		{"help", "help", "", run(plan.Command{Name: "help"})},
		{"help topic", "help Revert", "", run(plan.Command{Name: "help", Topic: "revert"})},
		{"help unknown topic", "help imprt", "", reply(`There is no command "imprt". Did you mean import?`)},
		{"help two topics", "help import revert", "", reply("one command at a time", "help [COMMAND]")},

		// status [ENV] [SERVICE...]
		{"status env", "status prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"status services by alias, name and stream", "status prod worker packit-service packit-dashboard", "", run(plan.Command{Name: "status", Env: "prod", Services: []string{"packit-worker", "packit-service", "packit-dashboard"}})},
		{"status env after services", "status worker prod", "", run(plan.Command{Name: "status", Env: "prod", Services: []string{"packit-worker"}})},
		{"status services deduplicated", "status prod worker packit-worker", "", run(plan.Command{Name: "status", Env: "prod", Services: []string{"packit-worker"}})},
		{"status channel env", "status", "stg", run(plan.Command{Name: "status", Env: "stg"})},
		{"status explicit env beats channel", "status prod", "stg", run(plan.Command{Name: "status", Env: "prod"})},
		{"status unknown channel env is no default", "status", "qa", run(plan.Command{Name: "status"})},
		{"status without env is every env", "status", "", run(plan.Command{Name: "status"})},
		{"status of services in every env", "status worker service", "", run(plan.Command{Name: "status", Services: []string{"packit-worker", "packit-service"}})},
		{"status mistyped env", "status prdo", "", reply(`Unknown environment or service "prdo". Did you mean prod?`)},
		{"status mistyped service", "status prod wroker", "", reply(`Unknown service "wroker". Did you mean worker (packit-worker)?`)},
		{"status two envs", "status prod stg", "", reply("One environment at a time: got prod and stg.")},
		{"status takes no flags", "status prod --dry-run", "", reply("Unknown flag --dry-run. status takes no flags.")},

		// images SERVICE [ENV]
		{"images", "images worker prod", "", run(plan.Command{Name: "images", Env: "prod", Services: []string{"packit-worker"}})},
		{"images env first", "images prod worker", "", run(plan.Command{Name: "images", Env: "prod", Services: []string{"packit-worker"}})},
		{"images channel env", "images dashboard", "prod", run(plan.Command{Name: "images", Env: "prod", Services: []string{"packit-dashboard"}})},
		{"images missing env", "images worker", "", reply("Which environment? One of: stg, prod.")},
		{"images missing service", "images prod", "", reply("Which service? One of: packit-service, packit-worker")},
		{"images mistyped service", "images wrker prod", "", reply(`Unknown service "wrker". Did you mean worker (packit-worker)?`)},
		{"images mistyped env", "images worker prd", "", reply(`Unknown environment "prd". Did you mean prod?`)},
		{"images two services", "images worker service prod", "", reply("One service at a time: got packit-worker and packit-service.")},
		{"images of one digest", "images worker prod 1a2b3c4", "", run(plan.Command{Name: "images", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4"})},
		{"images of one digest in the channel env", "images worker sha256:" + fullDigest, "prod", run(plan.Command{Name: "images", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"images of a malformed digest", "images worker prod sha256:xyz", "", reply(`Malformed digest "sha256:xyz"`)},
		{"images of a digest without a service", "images prod 1a2b3c4", "", reply("Which service?")},
		{"images env given as service", "images stg prod", "", reply("One environment at a time")},

		// history SERVICE [ENV] [--revision N]
		{"history", "history service prod", "", run(plan.Command{Name: "history", Env: "prod", Services: []string{"packit-service"}})},
		{"history revision", "history service prod --revision 3", "", run(plan.Command{Name: "history", Env: "prod", Services: []string{"packit-service"}, Revision: 3})},
		{"history revision with =", "history --revision=4 service prod", "", run(plan.Command{Name: "history", Env: "prod", Services: []string{"packit-service"}, Revision: 4})},
		{"history bad revision", "history service prod --revision x", "", reply(`Invalid argument "x" for "--revision" flag: want a revision number such as 3.`)},
		{"history negative revision", "history service prod --revision -1", "", reply("want a revision number such as 3")},
		{"history revision without value", "history service prod --revision", "", reply("Flag needs an argument: --revision.")},

		// import ENV [SERVICE...]
		{"import env", "import prod", "", run(plan.Command{Name: "import", Env: "prod"})},
		{"import one service", "import prod worker", "", run(plan.Command{Name: "import", Env: "prod", Services: []string{"packit-worker"}})},
		{"import dry run", "import prod worker --dry-run", "", run(plan.Command{Name: "import", Env: "prod", Services: []string{"packit-worker"}, DryRun: true})},
		{"import flag first", "import --dry-run prod", "", run(plan.Command{Name: "import", Env: "prod", DryRun: true})},
		{"import em dash from autocorrect", "import prod \u2014dry-run", "", run(plan.Command{Name: "import", Env: "prod", DryRun: true})},
		{"import channel env", "import worker", "stg", run(plan.Command{Name: "import", Env: "stg", Services: []string{"packit-worker"}})},
		{"import missing env", "import", "", reply("Which environment? One of: stg, prod.", "import ENV [SERVICE...] [--dry-run]", "--dry-run")},
		{"import mistyped flag", "import prod --dryrun", "", reply("Unknown flag --dryrun. Did you mean --dry-run?", "`help import` shows examples.")},
		{"import unknown flag", "import prod --force", "", reply("Unknown flag --force.")},
		{"import flag with one dash", "import prod -dry-run", "", reply("Unknown flag -dry-run. Did you mean --dry-run?")},
		{"import mistyped service", "import prod dashbord", "", reply(`Unknown service "dashbord". Did you mean dashboard (packit-dashboard)?`)},
		{"import env as service word", "import prod stg", "", reply("One environment at a time: got prod and stg.")},

		// revert SERVICE [ENV] DIGEST
		{"revert prefix", "revert worker prod 1A2B3C4", "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4"})},
		{"revert sha256 prefix", "revert worker prod sha256:1a2b3c4d", "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4d"})},
		{"revert full digest", "revert worker prod sha256:" + fullDigest, "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"revert bare full digest", "revert worker prod " + fullDigest, "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"revert pasted image reference", "revert worker prod quay.io/packit/packit-worker@sha256:" + fullDigest, "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"revert image of another repository", "revert worker prod quay.io/packit/packit-service@sha256:" + fullDigest, "", reply("is an image of quay.io/packit/packit-service, but this service's repository is quay.io/packit/packit-worker")},
		{"revert channel env", "revert worker 1a2b3c4", "prod", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4"})},
		{"revert dry run", "revert worker prod 1a2b3c4 --dry-run", "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4", DryRun: true})},
		{"revert malformed digest", "revert worker prod sha256:xyz", "", reply(`Malformed digest "sha256:xyz": give sha256:<64 hex> or a unique prefix of at least 7 hex characters`)},
		{"revert short prefix", "revert worker prod 1a2b3c", "", reply(`Malformed digest "1a2b3c"`)},
		{"revert too long", "revert worker prod " + fullDigest + "00", "", reply("Malformed digest")},
		{"revert other algorithm", "revert worker prod sha512:" + fullDigest, "", reply("Malformed digest")},
		{"revert pasted link", "revert worker prod https://quay.io/packit/packit-worker@sha256:" + fullDigest, "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"revert bare @digest", "revert worker prod @sha256:" + fullDigest, "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "sha256:" + fullDigest})},
		{"revert forgotten digest", "revert worker prod", "", reply("Which image? Give its digest last")},
		{"revert digest only", "revert 1a2b3c4", "prod", reply("Which service? Give it before the digest.")},
		{"revert nothing", "revert", "", reply("Give the service and the digest")},
		{"revert missing env", "revert worker 1a2b3c4", "", reply("Which environment? One of: stg, prod.")},
		{"revert mistyped service", "revert wroker prod 1a2b3c4", "", reply("Did you mean worker (packit-worker)?")},

		// undo SERVICE [ENV] [--to-revision N] [--force]
		{"undo", "undo service prod", "", run(plan.Command{Name: "undo", Env: "prod", Services: []string{"packit-service"}})},
		{"undo to revision with force", "undo worker prod --to-revision 3 --force", "", run(plan.Command{Name: "undo", Env: "prod", Services: []string{"packit-worker"}, ToRevision: 3, Force: true})},
		{"undo to revision 0 is previous", "undo worker prod --to-revision=0", "", run(plan.Command{Name: "undo", Env: "prod", Services: []string{"packit-worker"}})},
		{"undo dry run", "undo worker prod --dry-run", "", run(plan.Command{Name: "undo", Env: "prod", Services: []string{"packit-worker"}, DryRun: true})},
		{"undo bad revision", "undo worker prod --to-revision two", "", reply("want a revision number")},
		{"undo mistyped flag", "undo worker prod --to-revison 2", "", reply("Unknown flag --to-revison. Did you mean --to-revision?")},

		// track SERVICE [ENV]
		{"track", "track worker prod", "", run(plan.Command{Name: "track", Env: "prod", Services: []string{"packit-worker"}})},
		{"track dry run", "track worker stg --dry-run", "", run(plan.Command{Name: "track", Env: "stg", Services: []string{"packit-worker"}, DryRun: true})},
		{"track missing service", "track", "", reply("Which service?")},

		// hold
		{"hold until", `hold prod worker --reason "incident 4711" --until 2d`, "", run(plan.Command{Name: "hold", Env: "prod", Services: []string{"packit-worker"}, Reason: "incident 4711", Until: t0.AddDate(0, 0, 2)})},
		{"hold until a date in the env's zone", `hold prod --reason x --until 2026-12-01`, "", run(plan.Command{Name: "hold", Env: "prod", Reason: "x", Until: time.Date(2026, 12, 1, 0, 0, 0, 0, prague)})},

		// schedule
		{"schedule all envs", "schedule", "", run(plan.Command{Name: "schedule"})},
		{"schedule channel env", "schedule", "prod", run(plan.Command{Name: "schedule", Env: "prod"})},
		{"schedule one env", "schedule prod", "", run(plan.Command{Name: "schedule", Env: "prod"})},
		{"schedule pause", "schedule pause prod", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause"})},
		{"schedule pause for a while", "schedule pause prod --until 2h", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: t0.Add(2 * time.Hour)})},
		{"schedule pause days", "schedule pause prod --until 3d", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: t0.AddDate(0, 0, 3)})},
		{"schedule pause until a date in the env's zone", "schedule pause prod --until 2026-12-01", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: time.Date(2026, 12, 1, 0, 0, 0, 0, prague)})},
		{"schedule pause until a date and time", `schedule pause prod --until "2026-12-01 09:30"`, "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: time.Date(2026, 12, 1, 9, 30, 0, 0, prague)})},
		{"schedule pause until RFC 3339", "schedule pause prod --until 2026-12-01T09:30:00Z", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)})},
		{"schedule pause until a clock time tomorrow", "schedule pause prod --until 09:00", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: time.Date(2026, 11, 25, 9, 0, 0, 0, prague)})},
		{"schedule resume", "schedule resume prod", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "resume"})},
		{"schedule pause needs an env", "schedule pause", "", reply("Which environment? One of: stg, prod.")},
		{"schedule until without pause", "schedule resume prod --until 2h", "", reply("--until goes with `schedule pause ENV`.")},
		{"schedule until in the past", "schedule pause prod --until 2020-01-01", "", reply("is not in the future")},
		{"schedule until nonsense", "schedule pause prod --until tomorrowish", "", reply(`--until "tomorrowish" is not a time`)},
		{"schedule until too far", "schedule pause prod --until 400d", "", reply("at most a year ahead")},
		{"schedule mistyped subcommand", "schedule pasue prod", "", reply(`Unknown environment or subcommand "pasue". Did you mean pause?`)},
		{"schedule two envs", "schedule pause prod stg", "", reply("One environment at a time")},

		// requests
		{"pending", "pending", "", run(plan.Command{Name: "pending"})},
		{"pending takes no arguments", "pending now", "", reply(`pending takes no arguments, got "now".`)},
		{"confirm with hash", "confirm #abc123", "", run(plan.Command{Name: "confirm", ID: "abc123"})},
		{"confirm without hash", "confirm abc123", "", run(plan.Command{Name: "confirm", ID: "abc123"})},
		{"confirm without ID", "confirm", "", run(plan.Command{Name: "confirm"})},
		{"approve", "/deploy approve #Xy-9_z0", "", run(plan.Command{Name: "approve", ID: "xy-9_z0"})},
		{"approve two IDs", "approve #abc123 #def456", "", reply("One request at a time")},
		{"approve malformed ID", "approve #abc!23", "", reply(`Malformed request ID "#abc!23": IDs look like #abc123`)},
		{"approve bare hash", "approve #", "", reply("Malformed request ID")},
		{"cancel", "cancel #abc123", "", run(plan.Command{Name: "cancel", ID: "abc123"})},
		{"deny with reason", "deny #abc123 not during the freeze", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "not during the freeze"})},
		{"deny quoted reason", `deny #abc123 "not now, #later"`, "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "not now, #later"})},
		{"deny ID only", "deny abc123", "", run(plan.Command{Name: "deny", ID: "abc123"})},
		{"deny without ID", "deny", "", run(plan.Command{Name: "deny"})},
		{"audit", "audit", "", run(plan.Command{Name: "audit"})},
		{"audit n", "audit 50", "", run(plan.Command{Name: "audit", N: 50})},
		{"audit zero", "audit 0", "", reply("a number from 1 to 200")},
		{"audit word", "audit all", "", reply(`got "all"`)},
		{"audit negative", "audit -5", "", reply("Unknown shorthand flag")},
		{"whoami", "whoami", "", run(plan.Command{Name: "whoami"})},

		// What people type and paste: phones and macOS turn quotes curly,
		// Caps Lock and copied IDs come upper-case, Slack and Discord turn a
		// name into a mention (their decoders leave it as @name).
		{"curly double quotes", "revert worker prod \u201csha256:1a2b3c4\u201d", "", run(plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4"})},
		{"curly single quotes", "deny #abc123 \u2018not now\u2019", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "not now"})},
		{"German quotes", "deny #abc123 \u201enicht jetzt\u201c", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "nicht jetzt"})},
		{"guillemets", "deny #abc123 \u00abpas maintenant\u00bb", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "pas maintenant"})},
		{"curly quotes around a date and time", "schedule pause prod --until \u201c2026-12-01 09:30\u201d", "", run(plan.Command{Name: "schedule", Env: "prod", Sub: "pause", Until: time.Date(2026, 12, 1, 9, 30, 0, 0, prague)})},
		{"a curly apostrophe inside a word is not a quote", "deny #abc123 don\u2019t deploy now", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "don\u2019t deploy now"})},
		{"an unbalanced curly quote", "deny #abc123 \u201cnot now", "", reply("Unbalanced quotes")},
		{"a no-break space separates words", "status\u00a0prod", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"a zero-width space is dropped", "status prod\u200b", "", run(plan.Command{Name: "status", Env: "prod"})},
		{"upper-case request ID", "CONFIRM #CUOGLDSIKT", "", run(plan.Command{Name: "confirm", ID: "cuogldsikt"})},
		{"upper-case ID without hash", "approve ABC", "", run(plan.Command{Name: "approve", ID: "abc"})},
		{"upper-case deny keeps the reason's case", "DENY #ABC123 Not During The Freeze", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "Not During The Freeze"})},
		{"upper-case flag", "IMPORT PROD --DRY-RUN", "", run(plan.Command{Name: "import", Env: "prod", DryRun: true})},
		{"upper-case flag with a value", "history service prod --REVISION=3", "", run(plan.Command{Name: "history", Env: "prod", Services: []string{"packit-service"}, Revision: 3})},
		{"deny of a mention is refused", "deny @carol wrong person", "", reply("@carol is a mention", "deny takes a request ID", "`pending` lists")},
		{"approve of a mention is refused", "approve @bob", "", reply("@bob is a mention", "approve takes a request ID")},
		{"a mention is no environment", "status @prod", "", reply("@prod is a mention; status does not take people.")},
		{"a mention is no service", "import prod @worker", "", reply("@worker is a mention")},
		{"a mention after the ID is part of the reason", "deny #abc123 ask @carol first", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "ask @carol first"})},
		{"a mention as the whole reason", "deny #abc123 @carol", "", run(plan.Command{Name: "deny", ID: "abc123", Reason: "@carol"})},
		{"whoami takes no arguments", "whoami prod", "", reply("whoami takes no arguments")},
	}
	cfg := testConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(cfg, Input{Text: tt.input, ChannelEnv: tt.channelEnv, Now: t0})
			if got.Kind != tt.want.kind {
				t.Fatalf("Parse(%q) is %v, want %v; reply: %s", tt.input, got.Kind, tt.want.kind, flatten(got.Reply))
			}
			switch got.Kind {
			case RunKind:
				c := got.Command
				c.Text = ""
				if !reflect.DeepEqual(c, tt.want.cmd) {
					t.Errorf("Parse(%q) =\n %+v\nwant\n %+v", tt.input, c, tt.want.cmd)
				}
			case ReplyKind:
				text := flatten(got.Reply)
				for _, f := range tt.want.reply {
					if !strings.Contains(text, f) {
						t.Errorf("Parse(%q) reply lacks %q:\n%s", tt.input, f, text)
					}
				}
				if !got.Reply.Private {
					t.Errorf("Parse(%q) reply is not private", tt.input)
				}
			}
		})
	}
}

// TestParseDefaultEnv pins when ENV may be left out: a config with one
// environment needs none.
func TestParseDefaultEnv(t *testing.T) {
	cfg := testConfig()
	cfg.Environments = cfg.Environments[1:]
	tests := []struct {
		name  string
		input string
		want  plan.Command
	}{
		{"status", "status", plan.Command{Name: "status", Env: "prod"}},
		{"import", "import worker", plan.Command{Name: "import", Env: "prod", Services: []string{"packit-worker"}}},
		{"revert", "revert worker 1a2b3c4", plan.Command{Name: "revert", Env: "prod", Services: []string{"packit-worker"}, Digest: "1a2b3c4"}},
		{"schedule pause", "schedule pause", plan.Command{Name: "schedule", Env: "prod", Sub: "pause"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(cfg, Input{Text: tt.input, Now: t0})
			if got.Kind != RunKind {
				t.Fatalf("Parse(%q) is %v: %s", tt.input, got.Kind, flatten(got.Reply))
			}
			got.Command.Text = ""
			if !reflect.DeepEqual(got.Command, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.input, got.Command, tt.want)
			}
		})
	}
}

// TestParseText pins that Text drops the prefix and parses again to the same
// Command: the bot re-plans a request from it at approval time.
func TestParseText(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"slash", "/deploy import prod worker", "import prod worker"},
		{"bang with spaces", "  !deploy   revert worker prod 1a2b3c4 ", "revert worker prod 1a2b3c4"},
		{"bare", "undo service prod --to-revision 2", "undo service prod --to-revision 2"},
		{"quotes kept", `deny #abc123 "not now"`, `deny #abc123 "not now"`},
	}
	cfg := testConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := Parse(cfg, Input{Text: tt.input, Now: t0})
			if first.Kind != RunKind {
				t.Fatalf("Parse(%q) is %v: %s", tt.input, first.Kind, flatten(first.Reply))
			}
			if first.Command.Text != tt.want {
				t.Errorf("Text = %q, want %q", first.Command.Text, tt.want)
			}
			again := Parse(cfg, Input{Text: first.Command.Text, Now: t0})
			if !reflect.DeepEqual(again, first) {
				t.Errorf("parsing Text again gave %+v, want %+v", again.Command, first.Command)
			}
		})
	}
}

// TestEveryMutatingCommandTakesDryRun pins DESIGN's rule for the whole table.
func TestEveryMutatingCommandTakesDryRun(t *testing.T) {
	for _, s := range Commands() {
		if !s.Mutates {
			continue
		}
		if s.newFlagSet().Lookup("dry-run") == nil {
			t.Errorf("%s mutates but has no --dry-run", s.Name)
		}
		if s.plan == nil || s.run != nil || s.Flow {
			t.Errorf("%s mutates, so it must have a plan and neither run nor Flow", s.Name)
		}
	}
}

// TestTable pins the shape of the command table: every command of DESIGN,
// each carried out in exactly one way, with help text.
func TestTable(t *testing.T) {
	want := []string{"help", "status", "images", "history", "import", "revert", "undo", "track", "release", "promote", "hold", "unhold", "holds", "schedule",
		"pending", "confirm", "approve", "deny", "cancel", "whoami", "audit"}
	var got []string
	for _, s := range Commands() {
		got = append(got, s.Name)
		ways := 0
		for _, b := range []bool{s.run != nil, s.plan != nil, s.Flow} {
			if b {
				ways++
			}
		}
		if ways != 1 {
			t.Errorf("%s: run, plan and Flow: want exactly one, got %d", s.Name, ways)
		}
		if s.Usage == "" || s.Summary == "" || s.Who == "" || len(s.Examples) == 0 {
			t.Errorf("%s: usage, summary, who and examples are required for help", s.Name)
		}
		if !strings.HasPrefix(s.Usage, s.Name) {
			t.Errorf("%s: usage %q does not start with the name", s.Name, s.Usage)
		}
		for _, ex := range s.Examples {
			if r := Parse(testConfig(), Input{Text: ex, Now: t0}); r.Kind != RunKind || r.Command.Name != s.Name {
				t.Errorf("%s: example %q does not parse: %s", s.Name, ex, flatten(r.Reply))
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands = %v, want %v", got, want)
	}
	flow := map[string]bool{"schedule": true, "pending": true, "confirm": true, "approve": true, "deny": true, "cancel": true, "audit": true}
	for _, s := range Commands() {
		if s.Flow != flow[s.Name] {
			t.Errorf("%s: Flow = %v, want %v", s.Name, s.Flow, flow[s.Name])
		}
	}
}

func TestParseNilConfig(t *testing.T) {
	got := Parse(nil, Input{Text: "status prod"})
	if got.Kind != ReplyKind || !strings.Contains(flatten(got.Reply), "Environments: none configured.") {
		t.Errorf("Parse(nil config) = %v %s", got.Kind, flatten(got.Reply))
	}
}

// FuzzParse: whatever arrives, Parse does not panic, and a command it
// accepts is well-formed and parses again from its Text to the same Command.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"", " ", "/deploy", "!deploy help", "deploy status prod", "status", "status prod worker service",
		"images worker prod", "history service prod --revision 3", "import prod --dry-run", "import prod \u2014dry-run",
		"revert worker prod 1a2b3c4", "revert worker prod sha256:" + fullDigest, "revert worker prod quay.io/packit/packit-worker@sha256:" + fullDigest,
		"undo worker prod --to-revision=2 --force", "track worker stg", "schedule pause prod --until 2h",
		`schedule pause prod --until "2026-12-01 09:00"`, "schedule resume prod", "pending", "approve #abc123",
		`deny #abc123 "not now"`, "cancel abc123", "confirm", "whoami", "audit 20", "help revert",
		`"unbalanced`, `'x`, `\`, "#", "# comment", "a#b", `"#"`, "--", "-", "---x", "--=", "import -- prod",
		"revert worker prod sha256:", "approve ##", "deny # x", "\x00", "\xff\xfe", "status prod\nimport prod",
		"schedule pause prod --until 99999999999999h", "history x --revision 9223372036854775808",
		"revert worker prod \u201csha256:a67e8e3\u201d", "deny #abc123 \u2018not now\u2019", "deny #abc \u201enein\u201c", "deny #a don\u2019t",
		"\u201c", "\u2019\u2019\u2019", "status\u00a0prod\u200b", "CONFIRM #CUOGLDSIKT", "IMPORT PROD --DRY-RUN", "--UNTIL=2H",
		"deny @carol wrong person", "approve @bob", "deny #abc123 ask @carol", "@", "@@", "status @", "status",
		"promote worker stg prod", "PROMOTE Worker STG PROD", "promote worker prod", "promote worker stg stg", "promote stg prod", "promote worker service stg prod",
		`import prod --break-glass "prod is down"`, "import prod --break-glass", `import prod --break-glass=""`, "import prod —break-glass “fix”",
		"release", "release prod ogr packit-service", "release worker --to ABCDEF1", "release ogr —to 1234567 --dry-run",
		"release ogr --to", "release ogr --to=zzzzzzz", "release ogr service --to 1234567", "RELEASE OGR", "release “ogr”",
		"images worker prod 1a2b3c4", "images worker sha256:" + fullDigest, "revert worker prod https://quay.io/packit/packit-worker@sha256:" + fullDigest,
	}
	for _, s := range seeds {
		f.Add(s, "")
		f.Add(s, "prod")
	}
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, text, channelEnv string) {
		res := Parse(cfg, Input{Text: text, ChannelEnv: channelEnv, Now: t0})
		switch res.Kind {
		case Ignore:
			if strings.TrimSpace(text) != "" {
				t.Fatalf("Parse(%q) ignored a non-empty message", text)
			}
		case ReplyKind:
			if len(res.Reply.Sections) == 0 {
				t.Fatalf("Parse(%q) replied with nothing", text)
			}
		case RunKind:
			c := res.Command
			if _, ok := Lookup(c.Name); !ok {
				t.Fatalf("Parse(%q) gave unknown command %q", text, c.Name)
			}
			if c.Env != "" {
				if _, ok := findEnv(cfg, c.Env); !ok {
					t.Fatalf("Parse(%q) gave unknown env %q", text, c.Env)
				}
			}
			for _, s := range c.Services {
				if _, ok := findService(cfg, s); !ok || s != mustService(cfg, s) {
					t.Fatalf("Parse(%q) gave non-canonical service %q", text, s)
				}
			}
			if c.Digest != "" && !isFullDigest(c.Digest) && (len(c.Digest) < 7 || !isHex(c.Digest)) {
				t.Fatalf("Parse(%q) gave malformed digest %q", text, c.Digest)
			}
			again := Parse(cfg, Input{Text: c.Text, ChannelEnv: channelEnv, Now: t0})
			if again.Kind != RunKind || !reflect.DeepEqual(again.Command, c) {
				t.Fatalf("Parse(%q) = %+v, but its Text %q parses to %+v", text, c, c.Text, again.Command)
			}
		default:
			t.Fatalf("Parse(%q) kind %v", text, res.Kind)
		}
	})
}

func mustService(cfg *config.Config, name string) string {
	s, _ := findService(cfg, name)
	return s.Name
}

func BenchmarkParse(b *testing.B) {
	cfg := testConfig()
	inputs := []string{
		"/deploy import prod worker service --dry-run",
		"revert worker prod 1a2b3c4",
		"undo worker prod --to-revision 3 --force",
		"deny #abc123 \"not during the freeze\"",
		"imprt prod",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Parse(cfg, Input{Text: inputs[i%len(inputs)], Now: t0})
	}
}

// flatten is an Output as plain text, for assertions.
func flatten(o Output) string {
	var b strings.Builder
	if o.Title != "" {
		b.WriteString(o.Title + "\n")
	}
	for _, s := range o.Sections {
		if s.Heading != "" {
			b.WriteString(s.Heading + "\n")
		}
		for _, l := range s.Lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
