package oauth

import "testing"

// TestSafeNext: the sign-in pages go on only to paths on this server.
func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/account":                            "/account",
		"/oauth2/authorize?client_id=a&x=%20": "/oauth2/authorize?client_id=a&x=%20",
		"":                                    "",
		"account":                             "",
		"//evil.example/":                     "",
		"/\\evil.example/":                    "",
		"/\t/evil.example/":                   "",
		"/\n/evil.example/":                   "",
		"https://evil.example/":               "",
		"/ok path":                            "",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}
