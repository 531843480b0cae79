package mapping

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// refOriginPath is originPath as it was before the one-pass rewrite: the
// reference the rewrite is checked against.
func refOriginPath(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", errors.New("url.origin_path: not an absolute URL (want scheme://host/path): " + strconv.Quote(truncate(s)))
	}
	for j := 0; j < i; j++ {
		c := s[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", errors.New("url.origin_path: invalid URL scheme in " + strconv.Quote(truncate(s)))
		}
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	hostStart := i + 3
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		hostStart += at + 1
	}
	host := s[hostStart : i+3+end]
	if host == "" || strings.HasPrefix(host, ":") {
		return "", errors.New("url.origin_path: URL has no host: " + strconv.Quote(truncate(s)))
	}
	pathEnd := i + 3 + end
	if end < len(rest) && rest[end] == '/' {
		q := strings.IndexAny(s[pathEnd:], "?#")
		if q < 0 {
			pathEnd = len(s)
		} else {
			pathEnd += q
		}
	}
	for j := 0; j < pathEnd; j++ {
		if c := s[j]; c <= ' ' || c == 0x7f {
			return "", errors.New("url.origin_path: URL contains spaces or control characters")
		}
	}
	upper := func(s string) bool { // hasUpper
		for i := 0; i < len(s); i++ {
			if c := s[i]; c >= 'A' && c <= 'Z' {
				return true
			}
		}
		return false
	}
	if hostStart == i+3 && !upper(s[:i]) && !upper(host) {
		return s[:pathEnd], nil
	}
	return strings.ToLower(s[:i]) + "://" + strings.ToLower(host) + s[i+3+end:pathEnd], nil
}

var originPathInputs = []string{
	"", "https://shop.example.com/checkout/confirmation?session=abc123&utm_source=ads#top", "HTTPS://Shop.Example.COM/A/b?c#d",
	"/relative", "https://user:pw@x.com/p?q", "https://USER@x.com/P", "https://a@b@C.com/x", "https://x.com", "https://x.com?q=1",
	"https://x.com#f", "https://:80/", "https://@/", "https://u@:80/", "ht tp://x.com/", "https://x.com/a b", "https://x .com/",
	"https://x.com/a\x7f", "https://x.com/?a b", "https://x.com/#a\x00", "https://ÄÖ.example/ü", "https://X.COM:8080/Path?Q",
	"1http://x.com/", "h+t-t.p://x.com/", "://x.com", "https:/x.com", "https://", "https:///path", "mailto:a@b.c",
	"https://x.com\t/p", "https://x.com/p\n", "HTTP://[::1]:80/x", "https://x.com/" + strings.Repeat("a", 100) + " ",
}

func TestOriginPathMatchesReference(t *testing.T) {
	for _, s := range originPathInputs {
		checkOriginPath(t, s)
	}
}

func checkOriginPath(t *testing.T, s string) {
	got, err := originPath(s)
	want, wantErr := refOriginPath(s)
	if got != want || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Errorf("originPath(%q) = %q, %v; reference %q, %v", s, got, err, want, wantErr)
	}
}

func FuzzOriginPath(f *testing.F) {
	for _, s := range originPathInputs {
		f.Add(s)
	}
	f.Fuzz(checkOriginPath)
}
