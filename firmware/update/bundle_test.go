package update_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"fyr/firmware/update"
)

// testKey makes an ed25519 key pair.
func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// payload is a small slot: a kernel, an initramfs and a device-tree overlay in a directory.
var payload = fstest.MapFS{
	"vmlinuz":               {Data: []byte("KERNEL-" + strings.Repeat("k", 3000))},
	"initramfs.img":         {Data: []byte("INITRAMFS-" + strings.Repeat("i", 5000))},
	"overlays/fyr-rtc.dtbo": {Data: []byte("OVERLAY")},
}

var payloadNames = []string{"vmlinuz", "initramfs.img", "overlays/fyr-rtc.dtbo"}

// makeBundle signs a bundle of payload for boards at version.
func makeBundle(t testing.TB, key ed25519.PrivateKey, version uint64, boards ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	m := update.Manifest{Version: version, Label: "test", Boards: boards}
	if err := update.Write(&buf, m, payload, payloadNames, key); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

// flip returns b with the first byte of the first occurrence of marker changed.
func flip(t testing.TB, b []byte, marker string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		t.Fatalf("%q is not in the bundle", marker)
	}
	out := bytes.Clone(b)
	out[i] ^= 0x20
	return out
}

func TestVerify(t *testing.T) {
	pubA, privA := testKey(t)
	pubB, _ := testKey(t)
	_, privC := testKey(t)
	keys := update.NewKeyring(pubA, pubB)
	good := makeBundle(t, privA, 7, "raspberrypi,4-model-b")

	m, err := update.Verify(bytes.NewReader(good), keys)
	if err != nil {
		t.Fatalf("Verify(good bundle): %v", err)
	}
	if m.Version != 7 || len(m.Files) != 3 || m.Files[2].Name != "overlays/fyr-rtc.dtbo" || m.Files[0].Size != 3007 {
		t.Errorf("manifest = %+v", m)
	}

	truncated := good[:bytes.Index(good, []byte("INITRAMFS"))+100]
	extra := append(bytes.Clone(good[:len(good)-1024]), makeBundle(t, privA, 7, "x")[:1024]...) // another archive's first entry where the end should be
	// manifest.json's "version": 7 → "version": 9 keeps the JSON valid; only the signature notices.
	versionBump := bytes.Replace(good, []byte(`"version": 7`), []byte(`"version": 9`), 1)
	cases := []struct {
		name   string
		bundle []byte
		want   error
	}{
		{"untrusted key", makeBundle(t, privC, 7, "raspberrypi,4-model-b"), update.ErrUntrustedKey},
		{"flipped payload byte", flip(t, good, "INITRAMFS"), update.ErrHashMismatch},
		{"flipped byte in the last file", flip(t, good, "OVERLAY"), update.ErrHashMismatch},
		{"edited manifest", versionBump, update.ErrBadSignature},
		{"flipped manifest byte", flip(t, good, `"label"`), update.ErrBadSignature},
		{"truncated", truncated, update.ErrMalformed},
		{"empty", nil, update.ErrMalformed},
		{"not tar", []byte(strings.Repeat("garbage!", 200)), update.ErrMalformed},
		{"entry after the last file", extra, update.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := update.Verify(bytes.NewReader(c.bundle), keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			if !errors.Is(err, update.ErrRefused) {
				t.Errorf("Verify = %v, which does not match ErrRefused", err)
			}
		})
	}
}

func TestOpenChecksSignatureBeforePayload(t *testing.T) {
	pub, priv := testKey(t)
	good := makeBundle(t, priv, 1, "b")
	// A reader that fails past the metadata proves Open reads no payload.
	metaEnd := bytes.Index(good, []byte("KERNEL-"))
	r := io.MultiReader(bytes.NewReader(good[:metaEnd]), errReader{})
	br, err := update.Open(r, update.NewKeyring(pub))
	if err != nil {
		t.Fatalf("Open read past the signature: %v", err)
	}
	if br.KeyID != update.KeyID(pub) {
		t.Errorf("KeyID = %s, want %s", br.KeyID, update.KeyID(pub))
	}
	_, fr, err := br.Next()
	if err == nil {
		_, err = io.ReadAll(fr)
	}
	if err == nil || errors.Is(err, update.ErrRefused) {
		t.Errorf("reading the payload from a failing stream = %v, want the stream's error (not a refusal)", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("the network went away") }

func TestKeyRotation(t *testing.T) {
	pubOld, privOld := testKey(t)
	pubNew, privNew := testKey(t)
	pubNext, privNext := testKey(t)
	before := update.NewKeyring(pubOld, pubNew)
	after := update.NewKeyring(pubNew, pubNext) // the old key retired, a next one added

	for _, c := range []struct {
		name string
		keys *update.Keyring
		priv ed25519.PrivateKey
		ok   bool
	}{
		{"old key before rotation", before, privOld, true},
		{"new key before rotation", before, privNew, true},
		{"old key after rotation", after, privOld, false},
		{"new key after rotation", after, privNew, true},
		{"next key after rotation", after, privNext, true},
		{"next key before rotation", before, privNext, false},
	} {
		_, err := update.Verify(bytes.NewReader(makeBundle(t, c.priv, 1, "b")), c.keys)
		if ok := err == nil; ok != c.ok {
			t.Errorf("%s: Verify = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, update.ErrUntrustedKey) {
			t.Errorf("%s: Verify = %v, want ErrUntrustedKey", c.name, err)
		}
	}
}

func TestParseManifest(t *testing.T) {
	const sha = `"0000000000000000000000000000000000000000000000000000000000000000"`
	file := func(name string) string { return `{"name":"` + name + `","size":1,"sha256":` + sha + `}` }
	manifest := func(version, boards, files string) string {
		return `{"format":1,"version":` + version + `,"boards":` + boards + `,"files":[` + files + `]}`
	}
	if _, err := update.ParseManifest([]byte(manifest("3", `["b"]`, file("boot/vmlinuz")))); err != nil {
		t.Fatalf("ParseManifest(good) = %v", err)
	}
	for name, bad := range map[string]string{
		"format 2":          strings.Replace(manifest("3", `["b"]`, file("x")), `"format":1`, `"format":2`, 1),
		"version 0":         manifest("0", `["b"]`, file("x")),
		"no boards":         manifest("3", `[]`, file("x")),
		"no files":          manifest("3", `["b"]`, ""),
		"parent dir":        manifest("3", `["b"]`, file("../etc/passwd")),
		"absolute":          manifest("3", `["b"]`, file("/etc/passwd")),
		"hidden":            manifest("3", `["b"]`, file("a/.profile")),
		"double slash":      manifest("3", `["b"]`, file("a//b")),
		"reserved":          manifest("3", `["b"]`, file("manifest.json")),
		"space":             manifest("3", `["b"]`, file("a b")),
		"duplicate":         manifest("3", `["b"]`, file("x")+","+file("x")),
		"short sha":         strings.Replace(manifest("3", `["b"]`, file("x")), sha, `"00"`, 1),
		"upper-case sha":    strings.Replace(manifest("3", `["b"]`, file("x")), sha, `"`+strings.Repeat("A", 64)+`"`, 1),
		"negative size":     strings.Replace(manifest("3", `["b"]`, file("x")), `"size":1`, `"size":-1`, 1),
		"not json":          "{",
		"negative version":  manifest("-1", `["b"]`, file("x")),
		"string as version": manifest(`"3"`, `["b"]`, file("x")),
	} {
		if _, err := update.ParseManifest([]byte(bad)); !errors.Is(err, update.ErrMalformed) {
			t.Errorf("ParseManifest(%s) = %v, want ErrMalformed", name, err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	priv, pub, err := update.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := update.ParsePrivateKey(priv)
	if err != nil {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	pubs, err := update.ParsePublicKeys(pub)
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(key.Public()) {
		t.Fatalf("ParsePublicKeys = %v, %v; want the private key's public half", pubs, err)
	}
	if _, err := update.ParsePrivateKey(pub); err == nil {
		t.Error("ParsePrivateKey accepted a public key")
	}

	// Built-in keys plus the operator's file.
	builtinPub, _ := testKey(t)
	old := update.BuiltinKeys
	t.Cleanup(func() { update.BuiltinKeys = old })
	update.BuiltinKeys = base64.StdEncoding.EncodeToString(builtinPub)
	file := filepath.Join(t.TempDir(), "keys.pem")
	if k, err := update.LoadKeyring(file); err != nil || k.Len() != 1 {
		t.Fatalf("LoadKeyring without a file = %v, %v; want the built-in key", k, err)
	}
	os.WriteFile(file, pub, 0o600)
	k, err := update.LoadKeyring(file)
	if err != nil || k.Len() != 2 {
		t.Fatalf("LoadKeyring = %v, %v; want two keys", k, err)
	}
	if ids := k.IDs(); !strings.Contains(strings.Join(ids, ","), update.KeyID(pubs[0])) {
		t.Errorf("IDs() = %v, want %s among them", ids, update.KeyID(pubs[0]))
	}
	update.BuiltinKeys = "not base64!"
	if _, err := update.LoadKeyring(""); err == nil {
		t.Error("LoadKeyring accepted a malformed built-in key")
	}
}
