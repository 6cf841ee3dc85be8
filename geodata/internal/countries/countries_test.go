package countries

import "testing"

func TestTable(t *testing.T) {
	continents := map[string]int{}
	for code, c := range table {
		if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
			t.Errorf("code %q: want two upper-case letters", code)
		}
		switch c.Continent {
		case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
			continents[c.Continent]++
		default:
			t.Errorf("%s: continent %q", code, c.Continent)
		}
		if c.Lat < -90 || c.Lat > 90 || c.Lon < -180 || c.Lon > 180 {
			t.Errorf("%s: centre %v,%v out of range", code, c.Lat, c.Lon)
		}
	}
	if Len() < 249 || len(continents) != 7 {
		t.Errorf("%d codes on %d continents, want every ISO 3166-1 code on 7", Len(), len(continents))
	}
	for _, tc := range []struct {
		code, continent string
		lat, lon        float64
	}{
		{"US", "NA", 38, -97}, {"RU", "EU", 60, 100}, {"TR", "AS", 39, 35},
		{"BR", "SA", -10, -55}, {"AU", "OC", -27, 133}, {"ZA", "AF", -29, 24},
		{"AQ", "AN", -90, 0}, {"XK", "EU", 42.58, 21},
	} {
		c, ok := Lookup(tc.code)
		if !ok || c.Continent != tc.continent || c.Lat != tc.lat || c.Lon != tc.lon {
			t.Errorf("Lookup(%s) = %+v, %v; want %s %v,%v", tc.code, c, ok, tc.continent, tc.lat, tc.lon)
		}
	}
	if _, ok := Lookup("ZZ"); ok {
		t.Error("Lookup(ZZ): found")
	}
}
