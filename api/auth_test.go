package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name   string
		cfg    *Config
		path   string
		header string // Authorization; "" sends none
		want   int
	}{
		{"no token configured", &Config{}, "/v1/status", "", http.StatusOK},
		{"missing", &Config{Token: []byte(token)}, "/v1/status", "", http.StatusUnauthorized},
		{"wrong", &Config{Token: []byte(token)}, "/v1/status", "Bearer nope", http.StatusUnauthorized},
		{"prefix of the token", &Config{Token: []byte(token)}, "/v1/status", "Bearer s3cret", http.StatusUnauthorized},
		{"not bearer", &Config{Token: []byte(token)}, "/v1/status", "Basic " + token, http.StatusUnauthorized},
		{"right", &Config{Token: []byte(token)}, "/v1/status", "Bearer " + token, http.StatusOK},
		{"scheme in lower case", &Config{Token: []byte(token)}, "/v1/status", "bearer " + token, http.StatusOK},
		{"file with a newline", &Config{Token: []byte(token + "\n")}, "/v1/status", "Bearer " + token, http.StatusOK},
		{"metrics need it", &Config{Token: []byte(token)}, "/metrics", "", http.StatusUnauthorized},
		{"unknown route needs it", &Config{Token: []byte(token)}, "/v1/nothing", "", http.StatusUnauthorized},
		{"public path by default", &Config{Token: []byte(token)}, "/healthz", "", http.StatusOK}, // served without the token
		{"no public paths", &Config{Token: []byte(token), PublicPaths: []string{}}, "/healthz", "", http.StatusUnauthorized},
		{"a public path of the caller", &Config{Token: []byte(token), PublicPaths: []string{"/v1/status"}}, "/v1/status", "", http.StatusOK},
		{"the console's files", &Config{Token: []byte(token)}, "/ui/", "", http.StatusOK},
		{"the token in the query, for EventSource and WebSocket", &Config{Token: []byte(token)}, "/v1/status?token=" + token, "", http.StatusOK},
		{"a wrong token in the query", &Config{Token: []byte(token)}, "/v1/status?token=nope", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := newServer(t, tt.cfg)
			req := httptest.NewRequestWithContext(t.Context(), "GET", tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET %s with %q: %d, want %d: %s", tt.path, tt.header, rec.Code, tt.want, rec.Body)
			}
			if rec.Code != http.StatusUnauthorized {
				return
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Errorf("401 body %q is not a JSON error (%v)", rec.Body, err)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("401 Content-Type %q", ct)
			}
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(rec.Body.String(), token) {
				t.Errorf("401 body shows the token: %s", rec.Body)
			}
		})
	}
	if _, err := New(newFakeNode(t), &Config{Token: []byte(" \n")}); err == nil {
		t.Errorf("New accepted an empty token")
	}
}
