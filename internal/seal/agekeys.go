package seal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/agessh"

	"github.com/backupd/backupd/internal/fileperm"
)

// ParseRecipient parses one recipient as the config accepts it: an age X25519 public key
// (age1…), a post-quantum hybrid one (age1pq1…, which age refuses to mix with the others) or an
// SSH public key (ssh-ed25519, ssh-rsa). Errors never quote s: a private key
// pasted by mistake must not end up in a log.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, errors.New("empty recipient")
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"):
		return nil, errors.New("this is an age private key, not a recipient: remove it from the config now, " +
			"put its public key (age-keygen -y) here and the private key in identity_file")
	case strings.HasPrefix(s, "-----BEGIN"):
		return nil, errors.New("this is a private key, not a recipient: remove it from the config now and use the matching public key")
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, errors.New("not a valid post-quantum age public key (a wrong length or checksum)")
		}
		return r, nil
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, errors.New("not a valid age X25519 public key (a wrong length or checksum, or a plugin recipient, which is not supported)")
		}
		return r, nil
	case strings.HasPrefix(s, "ssh-ed25519 ") || strings.HasPrefix(s, "ssh-rsa "):
		r, err := agessh.ParseRecipient(s)
		if err != nil {
			return nil, errors.New("not a valid SSH public key (copy the whole line of the .pub file)")
		}
		return r, nil
	case strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "ecdsa-") || strings.HasPrefix(s, "sk-"):
		typ, _, _ := strings.Cut(s, " ")
		return nil, fmt.Errorf("SSH key type %s cannot be an age recipient", typ)
	default:
		return nil, errors.New("not an age public key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …)")
	}
}

// ParseRecipients parses every recipient, naming the first bad one by index.
func ParseRecipients(list []string) ([]age.Recipient, error) {
	out := make([]age.Recipient, 0, len(list))
	for i, s := range list {
		r, err := ParseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("recipient %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// LoadIdentities reads an age identity file (AGE-SECRET-KEY-… lines, # comments) or an
// unencrypted SSH private key (ed25519 or RSA).
func LoadIdentities(path string) ([]age.Identity, error) {
	if err := fileperm.CheckPrivate(path, "identity file"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w (pass the private key with --identity or encryption.identity_file)", err)
	}
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(data)
		if err != nil {
			return nil, fmt.Errorf("parse SSH identity %s: %w (passphrase-protected keys are not supported unattended; convert to an age key)", path, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse identity file %s: %w", path, err)
	}
	return ids, nil
}

// GenerateKey writes a new X25519 identity to path (mode 0600, refusing to overwrite) in the
// format of age-keygen, and returns its public key. X25519 rather than the post-quantum hybrid
// so that the age packaged by distributions (1.1) can decrypt by hand.
func GenerateKey(path string, now time.Time) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("generate age key: %w", err)
	}
	pub := id.Recipient().String()
	text := fmt.Sprintf("# created: %s by backupd\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), pub, id.String())
	if err := fileperm.WriteKey(path, []byte(text)); err != nil {
		return "", fmt.Errorf("create age key file: %w", err)
	}
	return pub, nil
}

// PublicKeyOf reads the public keys of an identity file (for a generated key beside the config).
func PublicKeyOf(path string) ([]string, error) {
	ids, err := LoadIdentities(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		switch k := id.(type) {
		case *age.X25519Identity:
			out = append(out, k.Recipient().String())
		case *age.HybridIdentity:
			out = append(out, k.Recipient().String())
		default:
			return nil, fmt.Errorf("identity file %s: cannot derive a public key from this key type; list the public key in encryption.recipients", path)
		}
	}
	return out, nil
}
