package event

import (
	"errors"
	"fmt"
	"time"
)

// TimeLayout is the DAS timestamp layout: UTC, microseconds, "+00" suffix.
const TimeLayout = "2006-01-02 15:04:05.000000+00"

// Time is a DAS timestamp. On the wire it is always a JSON string in
// TimeLayout, converted to UTC and truncated to microseconds.
//
// DAS always sends a string. The zero Time encodes as "" (not null), so that
// consumers that type the field as a string (AWS's Java sample does) keep
// working; "" and null both decode to the zero Time.
type Time struct{ time.Time }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) { return t.appendJSON(make([]byte, 0, 32)), nil }

// UnmarshalJSON implements json.Unmarshaler. It accepts a string in any form
// ParseTime accepts, "" or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	s, err := decodeString(b)
	if err != nil {
		return fmt.Errorf("event: time: %w", err)
	}
	return t.UnmarshalText([]byte(s))
}

// AppendText implements encoding.TextAppender (time.Time's own, promoted
// through embedding, would otherwise write RFC 3339).
func (t Time) AppendText(b []byte) ([]byte, error) {
	if t.IsZero() {
		return b, nil
	}
	return AppendTime(b, t.Time), nil
}

// MarshalText implements encoding.TextMarshaler.
func (t Time) MarshalText() ([]byte, error) { return t.AppendText(nil) }

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero Time.
func (t *Time) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		t.Time = time.Time{}
		return nil
	}
	v, err := ParseTime(string(b))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

func (t Time) appendJSON(dst []byte) []byte {
	if t.IsZero() {
		return append(dst, '"', '"')
	}
	dst = append(dst, '"')
	dst = AppendTime(dst, t.Time)
	return append(dst, '"')
}

// appendSame appends t's JSON, which is text when t is the same instant
// as u (whose JSON text is).
func (t Time) appendSame(dst []byte, u Time, text []byte) []byte {
	if t.Time.Equal(u.Time) && t.IsZero() == u.IsZero() {
		return append(dst, text...)
	}
	return t.appendJSON(dst)
}

// FormatTime formats t as a DAS timestamp (TimeLayout, in UTC).
func FormatTime(t time.Time) string { return string(AppendTime(make([]byte, 0, 29), t)) }

// AppendTime appends t in TimeLayout to dst. It is hand-written because the
// encoder calls it three times per event and time.AppendFormat is several
// times slower.
func AppendTime(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	// Days since 1970-01-01 and seconds into the day, rounding toward -inf.
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	year, month, day := civil(days)
	if year < 0 || year > 9999 {
		// Outside what four digits can hold: let the standard library decide.
		return t.UTC().AppendFormat(dst, TimeLayout)
	}
	us := t.Nanosecond() / 1000
	var b [29]byte
	put4(b[0:], year)
	b[4] = '-'
	put2(b[5:], month)
	b[7] = '-'
	put2(b[8:], day)
	b[10] = ' '
	put2(b[11:], int(rem/3600))
	b[13] = ':'
	put2(b[14:], int(rem/60%60))
	b[16] = ':'
	put2(b[17:], int(rem%60))
	b[19] = '.'
	put2(b[20:], us/10000)
	put2(b[22:], us/100%100)
	put2(b[24:], us%100)
	b[26], b[27], b[28] = '+', '0', '0'
	return append(dst, b[:]...)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse); time.Time.Date does the same
// work plus a zone lookup, twice as slow on this path.
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func put2(b []byte, v int) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }
func put4(b []byte, v int) { put2(b, v/100); put2(b[2:], v%100) }

var errTime = errors.New("not a DAS timestamp")

// ParseTime parses a DAS timestamp. Besides TimeLayout it accepts 0 to 9
// fraction digits (or none and no dot), "T" instead of the space, and a zone
// of "+00", "Z", "±HH", "±HHMM", "±HH:MM" or none (taken as UTC, as Aurora
// PostgreSQL and Oracle streams omit it). The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	t, ok := parseTime(s)
	if !ok {
		return time.Time{}, fmt.Errorf("event: parse time %q: %w", s, errTime)
	}
	return t, nil
}

func parseTime(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := atoiN(s[0:4])
	month, ok2 := atoiN(s[5:7])
	day, ok3 := atoiN(s[8:10])
	hour, ok4 := atoiN(s[11:13])
	min, ok5 := atoiN(s[14:16])
	sec, ok6 := atoiN(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := 100000000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if i > 9 {
				return time.Time{}, false
			}
			nsec += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case rest == "" || rest == "Z":
	case rest[0] == '+' || rest[0] == '-':
		z := rest[1:]
		var hh, mm int
		var ok bool
		switch len(z) {
		case 2:
			hh, ok = atoiN(z)
		case 4:
			var ok2 bool
			hh, ok = atoiN(z[:2])
			mm, ok2 = atoiN(z[2:])
			ok = ok && ok2
		case 5:
			var ok2 bool
			hh, ok = atoiN(z[:2])
			mm, ok2 = atoiN(z[3:])
			ok = ok && ok2 && z[2] == ':'
		}
		if !ok || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset = hh*3600 + mm*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, true
}

func atoiN(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
