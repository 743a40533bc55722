package config

import (
	"reflect"
	"testing"
	"time"
)

// TestParse covers value kinds Config does not use yet, such as durations.
func TestParse(t *testing.T) {
	tests := []struct {
		typ     reflect.Type
		raw     string
		want    any
		wantErr bool
	}{
		{durationType, "1m30s", 90 * time.Second, false},
		{durationType, "90", nil, true},
		{reflect.TypeFor[int64](), "-7", int64(-7), false},
		{reflect.TypeFor[int](), "1.5", nil, true},
		{reflect.TypeFor[float64](), "1e-3", 1e-3, false},
		{reflect.TypeFor[float64](), "Inf", nil, true},
		{reflect.TypeFor[bool](), "Yes", true, false},
		{reflect.TypeFor[bool](), "off", nil, true},
		{reflect.TypeFor[string](), "", "", false},
	}
	for _, tt := range tests {
		s := &Setting{Key: "k", typ: tt.typ}
		v, err := s.parse(tt.raw)
		if (err != nil) != tt.wantErr {
			t.Errorf("parse(%s, %q) error = %v, want error %v", tt.typ, tt.raw, err, tt.wantErr)
			continue
		}
		if err == nil && v.Interface() != tt.want {
			t.Errorf("parse(%s, %q) = %v, want %v", tt.typ, tt.raw, v.Interface(), tt.want)
		}
		if err == nil {
			if got := s.format(v); tt.typ == durationType && got != "1m30s" {
				t.Errorf("format(%v) = %q, want 1m30s", v.Interface(), got)
			}
		}
	}
}
