package config

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
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
