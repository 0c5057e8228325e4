package commands

import (
	"fmt"
	"strings"
)

// suggest returns the candidate closest to word, or "" when none is close
// enough to be a likely typo: an edit distance of at most 2 (or a third of a
// long word), or word being the start of exactly one candidate.
func suggest(word string, candidates []string) string {
	w := strings.ToLower(word)
	if w == "" {
		return ""
	}
	best, bestDist := "", -1
	limit := max(2, len([]rune(w))/3)
	var prefixed []string
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if len(w) >= 3 && strings.HasPrefix(lc, w) {
			prefixed = append(prefixed, c)
		}
		d := editDistance(w, lc)
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// didYouMean is " Did you mean X?" or "".
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %s?", s)
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, counted in runes.
// Inputs are chat words, so the quadratic cost is bounded by maxWord.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > maxWord || len(rb) > maxWord {
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// maxWord bounds the words compared for suggestions; longer ones are not typos.
const maxWord = 64
