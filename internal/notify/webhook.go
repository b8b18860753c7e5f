package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook defaults.
const (
	DefaultWebhookTimeout     = 10 * time.Second // one attempt
	DefaultWebhookMaxAttempts = 4
	DefaultWebhookBackoff     = time.Second // before the second attempt; doubles after each
	maxWebhookWait            = 30 * time.Second
)

// Webhook is a Notifier that posts JSON to an incoming-webhook URL (Slack, Mattermost,
// Rocket.Chat, or anything that reads our own fields). The URL is a secret — Slack's carries its
// token — so errors name only its host.
//
// A 5xx or 429 answer, or a network error, is retried with exponential backoff (honouring
// Retry-After), at most MaxAttempts times in all; any other non-2xx answer fails at once.
type Webhook struct {
	URL         string
	Client      *http.Client  // nil: http.DefaultClient
	Timeout     time.Duration // per attempt; 0: DefaultWebhookTimeout
	MaxAttempts int           // 0: DefaultWebhookMaxAttempts
	Backoff     time.Duration // 0: DefaultWebhookBackoff
}

var _ Notifier = (*Webhook)(nil)

// PostWebhook posts n to the webhook at url with the default timeout and retries.
func PostWebhook(ctx context.Context, url string, n Notification) error {
	return (&Webhook{URL: url}).Notify(ctx, n)
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not even the parse error: it would quote the URL, token and all.
		return errors.New("post webhook: the webhook URL is not an http(s) URL; check alerts.webhook")
	}
	where := u.Scheme + "://" + u.Host
	body, err := json.Marshal(webhookPayload(n))
	if err != nil {
		return fmt.Errorf("post webhook to %s: encode %q: %w", where, n.subject(), err)
	}

	attempts := cmpOr(w.MaxAttempts, DefaultWebhookMaxAttempts)
	wait := cmpOr(w.Backoff, DefaultWebhookBackoff)
	for attempt := 1; ; attempt++ {
		retry, after, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry || attempt >= attempts {
			return fmt.Errorf("post webhook %q to %s (attempt %d of %d): %w", n.subject(), where, attempt, attempts, err)
		}
		d := min(max(wait, after), maxWebhookWait)
		d += rand.N(d/4 + 1) // jitter, so that many daemons do not retry in step
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return fmt.Errorf("post webhook %q to %s (attempt %d of %d, no time left to retry): %w", n.subject(), where, attempt, attempts, err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("post webhook %q to %s (attempt %d of %d): %w (gave up: %w)", n.subject(), where, attempt, attempts, err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// post makes one attempt. retry says whether another attempt may succeed; after is the wait the
// server asked for (Retry-After), if any.
func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, cmpOr(w.Timeout, DefaultWebhookTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("build the request: the webhook URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "backupd")
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), 0, fmt.Errorf("%w; check that this host can reach the webhook", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("the server answered %s", resp.Status)
	if s := oneLine(string(snippet), 200); s != "" {
		err = fmt.Errorf("%w: %s", err, s)
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return retry, retryAfter(resp.Header.Get("Retry-After")), err
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// oneLine squeezes s into one line of at most n runes, for quoting a server's answer.
func oneLine(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, n)
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Payload is the JSON body of a webhook call. Slack-compatible receivers read text and blocks
// and ignore the rest; our own fields let other receivers route without parsing text.
type Payload struct {
	Text     string            `json:"text"`
	Blocks   []Block           `json:"blocks,omitempty"`
	Event    string            `json:"event,omitempty"`
	Policy   string            `json:"policy,omitempty"`
	Severity string            `json:"severity,omitempty"`
	Title    string            `json:"title"`
	Details  string            `json:"details,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
	Time     string            `json:"time,omitempty"` // RFC 3339, UTC
}

// Block is a Slack Block Kit block, only the kinds Payload uses: header, section, context.
type Block struct {
	Type     string      `json:"type"`
	Text     *BlockText  `json:"text,omitempty"`
	Fields   []BlockText `json:"fields,omitempty"`
	Elements []BlockText `json:"elements,omitempty"`
}

// BlockText is a Block Kit text object: "plain_text" or "mrkdwn".
type BlockText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Block Kit limits; a block over them makes Slack reject the whole message.
const (
	slackHeaderMax      = 150
	slackSectionMax     = 3000
	slackFieldMax       = 2000
	slackFieldsPerBlock = 10
	slackMaxBlocks      = 50
)

// webhookPayload renders n for a webhook.
func webhookPayload(n Notification) Payload {
	p := Payload{
		Event:    n.Event,
		Policy:   n.Policy,
		Severity: n.Severity,
		Title:    n.subject(),
		Details:  n.Text,
		Fields:   n.Fields,
	}
	if !n.Time.IsZero() {
		p.Time = n.Time.UTC().Format(time.RFC3339)
	}
	p.Text = slackEscape(severityTag(n.Severity) + p.Title)
	if n.Text != "" {
		p.Text += "\n" + slackEscape(n.Text)
	}

	p.Blocks = append(p.Blocks, Block{Type: "header", Text: &BlockText{"plain_text", truncate(severityTag(n.Severity)+p.Title, slackHeaderMax)}})
	if n.Text != "" {
		p.Blocks = append(p.Blocks, Block{Type: "section", Text: &BlockText{"mrkdwn", truncate(slackEscape(n.Text), slackSectionMax)}})
	}
	var fields []BlockText
	for _, k := range n.sortedFields() {
		fields = append(fields, BlockText{"mrkdwn", truncate("*"+slackEscape(k)+"*\n"+slackEscape(n.Fields[k]), slackFieldMax)})
	}
	for len(fields) > 0 && len(p.Blocks) < slackMaxBlocks-1 {
		k := min(len(fields), slackFieldsPerBlock)
		p.Blocks = append(p.Blocks, Block{Type: "section", Fields: fields[:k]})
		fields = fields[k:]
	}
	meta := []string{"backupd"}
	for _, r := range []string{n.Policy, n.Event, p.Time} {
		if r != "" {
			meta = append(meta, slackEscape(r))
		}
	}
	p.Blocks = append(p.Blocks, Block{Type: "context", Elements: []BlockText{{"mrkdwn", truncate(strings.Join(meta, " · "), slackSectionMax)}}})
	return p
}

func severityTag(s string) string {
	switch s {
	case SeverityCritical:
		return "[CRITICAL] "
	case SeverityWarning:
		return "[WARNING] "
	}
	return ""
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters, so that
// an error message quoting "<nil>" or "a && b" arrives as written.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
