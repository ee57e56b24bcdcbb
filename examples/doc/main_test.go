package main

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	want := `host sets its store; client connects and mirrors it:
  client: {"elements":[1,2,3],"users":{"ada":{"admin":true,"logins":0}}}
client listens on store.users.ada; host counts a login:
  client hears /users/ada/logins: 0 -> 1 (from host)
the link is cut; both edit the store:
  host hears /elements: [1,2,3] -> [1,2,3,4] (from host)
  client hears /users/ada/logins: 1 -> 3 (from client)
  client hears /users/ada/email: (none) -> "ada@example.com" (from client)
  client hears /users/ada/role: (none) -> "editor" (from client)
  host:   {"elements":[1,2,3,4],"users":{"ada":{"admin":false,"logins":2,"role":"owner"}}}
  client: {"elements":[1,2,3,5],"users":{"ada":{"admin":true,"email":"ada@example.com","logins":3,"role":"editor"},"grace":{"admin":false}}}
the link is back; each gets what it missed, and the edits merge:
  host hears /elements: [1,2,3,4] -> [1,2,3,4,5] (from client)
  client hears /users/ada/logins: 3 -> 4 (from host)
  client hears /users/ada/admin: true -> false (from host)
  host:   {"elements":[1,2,3,4,5],"users":{"ada":{"admin":false,"email":"ada@example.com","logins":4,"role":"editor"},"grace":{"admin":false}}}
  client: {"elements":[1,2,3,4,5],"users":{"ada":{"admin":false,"email":"ada@example.com","logins":4,"role":"editor"},"grace":{"admin":false}}}
every login counts (1 + 1 + 2), both pushes stay (by time), and of the two roles the later wins
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}
