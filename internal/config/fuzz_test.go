package config

import "testing"

// FuzzParse: any bytes given as a config file give a Config or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("targets:\n  a: {type: dir, path: ./a}\nencryption: {recipients: [age19gsf8cnqu7y73xgdp2ywxrqwphncwczp5kx5m46dppdahgf2895stj9rh8]}\npolicies:\n  p: {schedule: \"@daily\", mysql: {dsn: \"root@tcp(127.0.0.1:3306)/\"}, targets: [a]}\n"))
	f.Add([]byte("policies: {p: {schedule: '${NOPE}', targets: [x]}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", t.TempDir())
		if err == nil && cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
	})
}
