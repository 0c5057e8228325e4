package bot

import (
	"regexp"
	"strings"
)

// An Import button carries what it imports, not a request ID: the heads-up
// of a registry push is posted before any request exists, and a click opens
// a normal `import ENV SERVICE...` request under the env's policy, Planned
// at the click, so it imports what the registry has then. The value is the
// env and service names joined by '+', a character neither may contain
// (config validates them as DNS labels and subdomains), short enough for a
// Discord custom_id (100 characters with deploybot's prefix).
//
// This is the one button that carries no request ID, and it may be pressed
// more than once: it grants nothing that typing the command would not.
// Each click is a new request, checked for the person who clicks, with its
// own Plan, confirmation and approvals; while one holds the env the next
// gets "busy", and once the image is imported the Plan says there is
// nothing to change.

// maxOfferLen bounds an Import button's value.
const maxOfferLen = 80

// offerName is an env or service name as config accepts it.
var offerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// ImportOffer is the value of an Import button for services of env; when
// the names do not fit, it offers the import of all of env's services.
func ImportOffer(env string, services []string) string {
	v := strings.Join(append([]string{env}, services...), "+")
	if len(v) > maxOfferLen {
		return env
	}
	return v
}

// ParseImportOffer reads an Import button's value; ok is false for
// anything ImportOffer does not make.
func ParseImportOffer(v string) (env string, services []string, ok bool) {
	if v == "" || len(v) > maxOfferLen {
		return "", nil, false
	}
	parts := strings.Split(v, "+")
	for _, p := range parts {
		if !offerName.MatchString(p) {
			return "", nil, false
		}
	}
	return parts[0], parts[1:], true
}
