package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// DefaultPublicPaths are the paths served without the token when
// Config.PublicPaths is nil: the paths of UnauthenticatedRoutes, health
// checks, which load balancers and orchestrators call without credentials
// and which reveal nothing.
var DefaultPublicPaths = func() []string {
	var out []string
	for _, p := range UnauthenticatedRoutes {
		_, path, _ := strings.Cut(p, " ")
		out = append(out, path)
	}
	return out
}()

// authorized reports whether r may be served: no token is configured, the
// path is public (PublicPaths, and the web console's files under /ui/,
// which hold no data: the console asks for the token itself), or the
// request carries the configured token, as "Authorization: Bearer TOKEN"
// or, on a GET, as ?token=TOKEN: a browser's EventSource and WebSocket
// cannot send a header, so the console's live views send it so. The
// comparison is in constant time (of SHA-256 digests, so that not even the
// token's length leaks).
func (s *Server) authorized(r *http.Request) bool {
	if s.token == nil || slices.Contains(s.cfg.PublicPaths, r.URL.Path) {
		return true
	}
	if r.Method == http.MethodGet && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")) {
		return true
	}
	var got string
	if scheme, v, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		got = v
	} else if r.Method == http.MethodGet {
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], s.token) == 1
}

// unauthorized answers 401 with a JSON error and the challenge of RFC 6750.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="scuttle"`)
	msg := "missing bearer token: send Authorization: Bearer <token> (scuttle's -token-file or $SCUTTLE_TOKEN)"
	if r.Header.Get("Authorization") != "" {
		msg = "invalid bearer token"
	}
	s.metrics.request("", http.StatusUnauthorized, 0)
	writeJSON(w, http.StatusUnauthorized, errorBody{msg})
}
