package daemon

import (
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Series is one metric family the daemon's /metrics serves.
type Series struct {
	Name   string   // as exported: counters end in _total
	Type   string   // counter, gauge, histogram, summary, untyped
	Labels []string // sorted
}

// ExportedSeries lists every metric family /metrics can serve, including those with no sample
// yet (a labelled series appears only once something sets it, so a scrape of a fresh daemon
// shows few). It gathers the daemon's own set of collectors: the dashboards and alert rules
// shipped under deploy/ are tested against it.
func ExportedSeries() ([]Series, error) {
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	registerAll(rec, "dev")
	for _, c := range rec.collectors {
		if err := addChild(c); err != nil {
			return nil, err
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather the daemon's metrics: %w", err)
	}
	out := make([]Series, 0, len(mfs))
	for _, mf := range mfs {
		s := Series{Name: mf.GetName(), Type: mf.GetType().String()}
		switch mf.GetType().String() {
		case "COUNTER":
			s.Type = "counter"
		case "GAUGE":
			s.Type = "gauge"
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			s.Type = "histogram"
		case "SUMMARY":
			s.Type = "summary"
		default:
			s.Type = "untyped"
		}
		if len(mf.GetMetric()) > 0 {
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				s.Labels = append(s.Labels, lp.GetName())
			}
		}
		slices.Sort(s.Labels)
		out = append(out, s)
	}
	return out, nil
}

// recordingRegisterer keeps the collectors registered through it, so that ExportedSeries can
// give each vector a child.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// addChild gives a vector one series, with placeholder label values, so that it is gathered.
func addChild(c prometheus.Collector) error {
	var mv *prometheus.MetricVec
	switch v := c.(type) {
	case *prometheus.GaugeVec:
		mv = v.MetricVec
	case *prometheus.CounterVec:
		mv = v.MetricVec
	case *prometheus.HistogramVec:
		mv = v.MetricVec
	case *prometheus.SummaryVec:
		mv = v.MetricVec
	default:
		return nil // a single metric or a collector: gathered as it is
	}
	// The vector knows how many labels it takes but does not say; it refuses a wrong count.
	var err error
	for n := range 16 {
		lvs := make([]string, n)
		for i := range lvs {
			lvs[i] = "x"
		}
		if _, err = mv.GetMetricWithLabelValues(lvs...); err == nil {
			return nil
		}
	}
	return fmt.Errorf("give a metric vector a series: %w", err)
}
