package commands

import (
	"fmt"

	"github.com/deploybot/deploybot/config"
)

// suggest is config.Suggest: one notion of "a likely typo" for the config
// and the chat grammar.
func suggest(word string, candidates []string) string { return config.Suggest(word, candidates) }

// didYouMean is " Did you mean X?" or "".
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %s?", s)
	}
	return ""
}
