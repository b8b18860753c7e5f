package drill

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/humanize"
)

// The HTML report is written for mail clients: one table layout, inline styles only, no
// scripts, images, web fonts or external assets (Gmail strips <style> blocks in places and
// Outlook renders with Word, which ignores most CSS). The RTO trend is drawn with table cells
// of a given width and background colour, which every client renders; SVG is not, reliably.

const (
	colorPass   = "#1a7f37"
	colorFail   = "#cf222e"
	colorMuted  = "#57606a"
	colorBorder = "#d0d7de"
	colorBar    = "#4a7bd0"
)

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"color":    resultColor,
	"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
	"short":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"bytes":    humanize.Bytes,
	"dur":      func(s float64) string { return round(seconds(s)).String() },
	"limit":    limitLine,
	"seconds":  seconds,
	"upper":    strings.ToUpper,
	"verdict":  TableResult.verdict,
	"describe": CheckResult.describe,
	"storage":  StorageResult.describe,
	"scratch":  ScratchInfo.describe,
	"found": func(p *int64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprint(*p)
	},
	"tableColor": func(s string) string {
		switch s {
		case TableOK:
			return colorPass
		case TableMismatch, TableNotRestored:
			return colorFail
		}
		return colorMuted
	},
	"checkColor": func(s string) string {
		if s == CheckPass {
			return colorPass
		}
		return colorFail
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{.R.Subject}}</title></head>
<body style="margin:0;padding:0;background:#f6f8fa;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f6f8fa;">
<tr><td align="center" style="padding:16px 8px;">
<table role="presentation" width="680" cellpadding="0" cellspacing="0" border="0" style="max-width:680px;width:100%;background:#ffffff;border:1px solid {{.Border}};font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:20px;color:#24292f;">
<tr><td bgcolor="{{color .R.Result}}" style="background:{{color .R.Result}};color:#ffffff;padding:14px 20px;font-size:20px;line-height:26px;font-weight:bold;">
Restoration drill {{.R.Result}}: {{.R.Policy}}
</td></tr>
<tr><td style="padding:16px 20px 4px 20px;">
{{- if .R.Reasons}}
<p style="margin:0 0 8px 0;font-weight:bold;color:{{.Fail}};">{{len .R.Reasons}} problem(s):</p>
<ul style="margin:0 0 12px 0;padding-left:20px;color:{{.Fail}};">{{range .R.Reasons}}<li style="margin:0 0 4px 0;">{{.}}</li>{{end}}</ul>
{{- else}}
<p style="margin:0 0 12px 0;color:{{.Pass}};font-weight:bold;">Every table came back with the same rows and checksum as at backup time{{if .R.Checks}}, every check passed{{end}}{{if .R.Storage}}, every stored file matched its hash{{end}}.</p>
{{- end}}
{{- range .R.Warnings}}<p style="margin:0 0 8px 0;color:{{$.Muted}};">Warning: {{.}}</p>{{end}}
<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="font-size:14px;margin:0 0 8px 0;">
{{- if .R.Set}}
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Set</td><td style="padding:2px 0;">{{.R.Set.ID}} from target <b>{{.R.Target}}</b></td></tr>
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Data as of</td><td style="padding:2px 0;">{{utc .R.Set.SnapshotAt}}{{if .R.Set.Source}} ({{.R.Set.Source}}){{end}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Size</td><td style="padding:2px 0;">{{.R.Set.Tables}} tables, {{.R.Set.Rows}} rows, {{bytes .R.Set.PlainBytes}} ({{bytes .R.Set.Bytes}} stored)</td></tr>
{{- else}}
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Set</td><td style="padding:2px 0;">none found on target <b>{{.R.Target}}</b></td></tr>
{{- end}}
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">RTO</td><td style="padding:2px 0;{{if .RTOOver}}color:{{.Fail}};font-weight:bold;{{end}}">{{limit .R.RTO .R.MaxRTOSeconds}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">RPO</td><td style="padding:2px 0;{{if .RPOOver}}color:{{.Fail}};font-weight:bold;{{end}}">{{limit .R.RPO .R.MaxRPOSeconds}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Scratch</td><td style="padding:2px 0;">{{scratch .R.Scratch .R.ScratchSeconds}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:{{.Muted}};">Drill</td><td style="padding:2px 0;">{{utc .R.StartedAt}} on {{.R.Host}}</td></tr>
</table>
</td></tr>
{{- range .R.Databases}}
<tr><td style="padding:12px 20px 4px 20px;">
<p style="margin:0 0 6px 0;font-size:16px;font-weight:bold;">Database {{.Source}}{{if ne .RestoredAs .Source}} <span style="font-weight:normal;color:{{$.Muted}};">(restored as {{.RestoredAs}})</span>{{end}}</p>
{{- if .Error}}<p style="margin:0 0 6px 0;color:{{$.Fail}};">Restore failed: {{.Error}}</p>{{end}}
<table width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;font-size:13px;">
<tr>
<th align="left" style="padding:4px 8px;border-bottom:2px solid {{$.Border}};">Table</th>
<th align="right" style="padding:4px 8px;border-bottom:2px solid {{$.Border}};">Rows expected</th>
<th align="right" style="padding:4px 8px;border-bottom:2px solid {{$.Border}};">Rows found</th>
<th align="left" style="padding:4px 8px;border-bottom:2px solid {{$.Border}};">Checksum</th>
</tr>
{{- range .Tables}}
<tr>
<td style="padding:3px 8px;border-bottom:1px solid {{$.Border}};">{{.Name}}</td>
<td align="right" style="padding:3px 8px;border-bottom:1px solid {{$.Border}};font-family:Consolas,Menlo,monospace;">{{.RowsExpected}}</td>
<td align="right" style="padding:3px 8px;border-bottom:1px solid {{$.Border}};font-family:Consolas,Menlo,monospace;">{{found .RowsFound}}</td>
<td style="padding:3px 8px;border-bottom:1px solid {{$.Border}};color:{{tableColor .Status}};">{{verdict .}}</td>
</tr>
{{- end}}
</table>
</td></tr>
{{- end}}
{{- if .R.Checks}}
<tr><td style="padding:12px 20px 4px 20px;">
<p style="margin:0 0 6px 0;font-size:16px;font-weight:bold;">Checks</p>
<table width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;font-size:13px;">
{{- range .R.Checks}}
<tr>
<td width="60" valign="top" style="padding:3px 8px;border-bottom:1px solid {{$.Border}};color:{{checkColor .Status}};font-weight:bold;">{{upper .Status}}</td>
<td valign="top" style="padding:3px 8px;border-bottom:1px solid {{$.Border}};">{{.Name}}: {{describe .}}<br><span style="color:{{$.Muted}};font-family:Consolas,Menlo,monospace;font-size:12px;">{{.SQL}}</span></td>
</tr>
{{- end}}
</table>
</td></tr>
{{- end}}
{{- if .R.Storage}}
<tr><td style="padding:12px 20px 4px 20px;">
<p style="margin:0 0 6px 0;font-size:16px;font-weight:bold;">Storage</p>
{{- range .R.Storage}}
<p style="margin:0 0 4px 0;{{if .Error}}color:{{$.Fail}};{{end}}"><b>{{.Source}}</b>: {{storage .}}</p>
{{- end}}
</td></tr>
{{- end}}
{{- if .Trend}}
<tr><td style="padding:12px 20px 16px 20px;">
<p style="margin:0 0 6px 0;font-size:16px;font-weight:bold;">RTO of the last {{len .Trend}} drills</p>
<table width="100%" cellpadding="0" cellspacing="0" border="0" style="font-size:12px;">
{{- range .Trend}}
<tr>
<td width="110" style="padding:2px 8px 2px 0;color:{{$.Muted}};white-space:nowrap;">{{short .At}}</td>
<td width="40" style="padding:2px 8px 2px 0;color:{{color .Result}};font-weight:bold;">{{.Result}}</td>
<td style="padding:2px 0;"><table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr><td width="{{.Width}}" height="12" bgcolor="{{if .Current}}{{color .Result}}{{else}}{{$.Bar}}{{end}}" style="width:{{.Width}}px;height:12px;line-height:12px;font-size:1px;background:{{if .Current}}{{color .Result}}{{else}}{{$.Bar}}{{end}};">&nbsp;</td></tr></table></td>
<td width="150" align="right" style="padding:2px 0 2px 8px;white-space:nowrap;">{{dur .RTOSeconds}} · {{bytes .Bytes}}</td>
</tr>
{{- end}}
</table>
</td></tr>
{{- end}}
<tr><td style="padding:8px 20px 14px 20px;border-top:1px solid {{.Border}};color:{{.Muted}};font-size:12px;">
{{.R.Tool}} · drill {{.R.ID}} · stored on the policy's targets under {{.R.Policy}}/drills/
</td></tr>
</table>
</td></tr></table>
</body></html>
`))

// trendBar is one row of the HTML chart.
type trendBar struct {
	TrendPoint
	Width   int // pixels, up to maxBar
	Current bool
}

const maxBar = 300

// HTML renders the report as a self-contained HTML page for mail.
func (r *Report) HTML() (string, error) {
	var longest float64
	for _, p := range r.Trend {
		longest = max(longest, p.RTOSeconds)
	}
	var bars []trendBar
	for _, p := range r.Trend {
		w := 1
		if longest > 0 {
			w = max(1, int(p.RTOSeconds/longest*maxBar+0.5))
		}
		bars = append(bars, trendBar{TrendPoint: p, Width: w, Current: p.ID == r.ID})
	}
	data := struct {
		R                 *Report
		Trend             []trendBar
		Pass, Fail, Muted string
		Border, Bar       string
		RTOOver, RPOOver  bool
	}{
		R: r, Trend: bars, Pass: colorPass, Fail: colorFail, Muted: colorMuted, Border: colorBorder, Bar: colorBar,
		RTOOver: r.MaxRTOSeconds > 0 && r.RTOSeconds > r.MaxRTOSeconds,
		RPOOver: r.MaxRPOSeconds > 0 && r.RPOSeconds > r.MaxRPOSeconds,
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render the HTML report: %w", err)
	}
	return b.String(), nil
}

func resultColor(result string) string {
	if result == Pass {
		return colorPass
	}
	return colorFail
}
