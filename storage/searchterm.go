package storage

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a search term, so one request cannot build an FTS5 query of unbounded cost.
const (
	MaxSearchTermBytes = 1024
	MaxSearchWords     = 64
	// minPrefixRunes is the shortest word matched as a prefix: "möte" finds "mötet" and
	// "mötesrum" (Swedish inflects and compounds, and FTS5 does not stem), while "är" stays
	// the word "är" instead of every word that starts with it.
	minPrefixRunes = 3
)

// Errors ParseSearchTerm returns; the message is meant for the client.
var (
	ErrSearchTermEmpty    = errors.New("search_term has no words to search for")
	ErrSearchTermTooLong  = errors.New("search_term is too long")
	ErrSearchTermTooMany  = errors.New("search_term has too many words")
	ErrSearchTermOnlyNots = errors.New("search_term only excludes words; give at least one to look for")
)

// SearchExpr is a user's search term turned into an FTS5 query. Every word the user typed
// reaches FTS5 inside double quotes, and a word holds only letters, digits and marks, so no
// user input is ever read as FTS5 syntax (operators, column filters, NEAR, ^, *, parentheses).
type SearchExpr struct {
	// Match is the FTS5 query.
	Match string
	// Words are the words looked for (not the excluded ones), lower-cased, for highlights.
	Words []SearchWord
}

// SearchWord is one word a search looks for.
type SearchWord struct {
	Text string
	// Prefix: the word matches any word that starts with it.
	Prefix bool
}

// ParseSearchTerm reads a search term the way web search boxes do:
//
//   - words are all required: `flood map` finds events with both;
//   - OR between two words or phrases accepts either: `flood OR storm`;
//   - "double quotes" make a phrase, matched exactly;
//   - a leading minus excludes a word or phrase: `flood -drill`;
//   - a word joined by punctuation is matched as the phrase FTS5 indexes it as: e-post is
//     "e post", 10:30 is "10 30";
//   - a word of three or more letters also matches longer words that start with it.
//
// Anything else (*, ^, :, parentheses, NEAR, AND, NOT) is plain text. Case never matters.
func ParseSearchTerm(term string) (*SearchExpr, error) {
	if len(term) > MaxSearchTermBytes {
		return nil, ErrSearchTermTooLong
	}
	items, err := lexSearchTerm(term)
	if err != nil {
		return nil, err
	}
	// OR binds tighter than the implicit AND: `a b OR c d` is a AND (b OR c) AND d.
	var groups [][]searchItem
	var nots []searchItem
	pendingOr := false
	for _, it := range items {
		switch {
		case it.or:
			pendingOr = len(groups) > 0
		case it.not:
			nots = append(nots, it)
			pendingOr = false
		case pendingOr:
			groups[len(groups)-1] = append(groups[len(groups)-1], it)
			pendingOr = false
		default:
			groups = append(groups, []searchItem{it})
		}
	}
	if len(groups) == 0 {
		if len(nots) > 0 {
			return nil, ErrSearchTermOnlyNots
		}
		return nil, ErrSearchTermEmpty
	}
	x := &SearchExpr{}
	var b strings.Builder
	for i, g := range groups {
		if i > 0 {
			b.WriteString(" AND ")
		}
		if len(g) > 1 {
			b.WriteByte('(')
		}
		for j, it := range g {
			if j > 0 {
				b.WriteString(" OR ")
			}
			it.write(&b)
			for k, w := range it.words {
				x.Words = append(x.Words, SearchWord{Text: w, Prefix: it.prefix && k == len(it.words)-1})
			}
		}
		if len(g) > 1 {
			b.WriteByte(')')
		}
	}
	if len(nots) > 0 {
		// FTS5's NOT is binary: (wanted) NOT a NOT b.
		match := "(" + b.String() + ")"
		b.Reset()
		b.WriteString(match)
		for _, it := range nots {
			b.WriteString(" NOT ")
			it.write(&b)
		}
	}
	x.Match = b.String()
	return x, nil
}

// searchItem is one word or phrase of a search term, or the OR operator.
type searchItem struct {
	words  []string
	prefix bool
	not    bool
	or     bool
}

// write appends the item as an FTS5 phrase: "w1 w2", with * for a prefix.
func (it searchItem) write(b *strings.Builder) {
	b.WriteByte('"')
	for i, w := range it.words {
		if i > 0 {
			b.WriteByte(' ')
		}
		// Words hold no quotes; doubling them anyway keeps this safe on its own.
		b.WriteString(strings.ReplaceAll(w, `"`, `""`))
	}
	b.WriteByte('"')
	if it.prefix {
		b.WriteByte('*')
	}
}

// lexSearchTerm splits a term into items: quoted phrases, and runs of non-space characters
// whose words form one phrase. Items without words are dropped.
func lexSearchTerm(term string) ([]searchItem, error) {
	var items []searchItem
	nwords := 0
	add := func(it searchItem) error {
		if len(it.words) == 0 {
			return nil
		}
		nwords += len(it.words)
		if nwords > MaxSearchWords {
			return ErrSearchTermTooMany
		}
		items = append(items, it)
		return nil
	}
	s := term
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if unicode.IsSpace(r) {
			s = s[n:]
			continue
		}
		not := false
		if r == '-' && len(s) > n {
			if next, _ := utf8.DecodeRuneInString(s[n:]); next == '"' || IsSearchTokenRune(next) {
				not = true
				s = s[n:]
				r, n = utf8.DecodeRuneInString(s)
			}
		}
		if r == '"' {
			// A phrase runs to the next quote, or to the end of the term.
			body := s[n:]
			end := strings.IndexByte(body, '"')
			if end < 0 {
				end = len(body)
				s = ""
			} else {
				s = body[end+1:]
			}
			if err := add(searchItem{words: SearchTokens(body[:end]), not: not}); err != nil {
				return nil, err
			}
			continue
		}
		end := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '"' })
		if end < 0 {
			end = len(s)
		}
		chunk := s[:end]
		s = s[end:]
		if chunk == "OR" && !not {
			items = append(items, searchItem{or: true})
			continue
		}
		words := SearchTokens(chunk)
		it := searchItem{words: words, not: not}
		// Excluded words are exact: "-möte" should not also hide "mötesrum".
		if len(words) > 0 && !not && utf8.RuneCountInString(words[len(words)-1]) >= minPrefixRunes {
			it.prefix = true
		}
		if err := add(it); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// IsSearchTokenRune reports whether r is part of a word for search, as for FTS5's unicode61
// tokenizer: letters, numbers and private-use characters, plus combining marks so that a
// decomposed "ö" stays one word here (FTS5 tokenizes the quoted text again itself).
func IsSearchTokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || unicode.Is(unicode.Co, r)
}

// SearchTokens splits text into lower-cased words as the index sees them.
func SearchTokens(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !IsSearchTokenRune(r) }) {
		out = append(out, strings.ToLower(w))
	}
	return out
}

// Highlights returns the words of text that the search matched, as they are written there
// (the spec's highlights: a client marks them in the result, and they may differ from the
// words typed, e.g. "Mötet" for möte).
func (x *SearchExpr) Highlights(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !IsSearchTokenRune(r) }) {
		lw := strings.ToLower(w)
		for _, sw := range x.Words {
			if lw == sw.Text || (sw.Prefix && strings.HasPrefix(lw, sw.Text)) {
				out = append(out, w)
				break
			}
		}
	}
	return out
}
