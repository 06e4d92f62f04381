package webapp

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/shopledger/shopledger/projections"
)

// Charts are drawn on the server as inline SVG: the pages run no script
// and the Content-Security-Policy allows no inline style, so everything
// is presentation attributes. Each chart is an image with a title and a
// description, and the page beside it holds the same numbers as a table.

type chartHTML = template.HTML

const (
	padL        = 84.0
	padR        = 12.0
	padT        = 12.0
	padB        = 28.0
	colorBar    = "#0b57d0"
	colorOrders = "#6b3fa0"
	colorText   = "#4a4a50"
	colorGrid   = "#d0d0d6"
	colorSale   = "#a50e0e"
	colorIn     = "#0b6b2d"
	colorLine   = "#1d1d1f"
)

// Sizes of the charts' drawing areas: the sales charts sit two abreast,
// the stock chart spans the page.
const (
	barW, barH     = 480.0, 220.0
	stockW, stockH = 760.0, 260.0
)

type svgBuilder struct {
	strings.Builder
	w, h float64
}

func (b *svgBuilder) f(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

func esc(s string) string { return html.EscapeString(s) }

// open starts an accessible SVG image labelled by its title and desc.
func (b *svgBuilder) open(id, title, desc string, w, h float64) {
	b.w, b.h = w, h
	b.f(`<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-t %s-d" font-family="system-ui, sans-serif">`,
		w, h, id, id)
	b.f(`<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id, esc(title), id, esc(desc))
}

// barChart draws one bar per label, with the largest value marked on the
// axis and every seventh label written under its bar.
func barChart(id, title, desc, color string, labels []string, values []int64, show func(int64) string) chartHTML {
	var b svgBuilder
	b.open(id, title, desc, barW, barH)
	chartW, chartH := b.w, b.h
	top := int64(0)
	for _, v := range values {
		top = max(top, v)
	}
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	base := padT + plotH
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, padL, base, chartW-padR, base, colorGrid)
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3 3"/>`, padL, padT, chartW-padR, padT, colorGrid)
	// The top value sits inside the plot, haloed, so that a long amount
	// is never cut off at the left edge.
	b.f(`<text x="%.1f" y="%.1f" font-size="14" fill="%s" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`, padL+4, padT+16, colorText, esc(show(top)))
	b.f(`<text x="%.1f" y="%.1f" font-size="14" text-anchor="end" fill="%s">0</text>`, padL-6, base+4, colorText)
	n := len(values)
	if n > 0 {
		slot := plotW / float64(n)
		for i, v := range values {
			h := 0.0
			if top > 0 {
				h = plotH * float64(v) / float64(top)
			}
			x := padL + float64(i)*slot
			// A zero day still gets a hairline, so that it reads as zero
			// rather than missing.
			b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
				x+slot*0.15, base-max(h, 1), slot*0.7, max(h, 1), color, esc(labels[i]), esc(show(v)))
			// Every seventh day is named, and the last unless that
			// would crowd the one before.
			if i%7 == 0 || (i == n-1 && i%7 >= 4) {
				b.f(`<text x="%.1f" y="%.1f" font-size="13" text-anchor="middle" fill="%s">%s</text>`, x+slot/2, chartH-8, colorText, esc(shortDay(labels[i])))
			}
		}
	}
	b.f(`</svg>`)
	return chartHTML(b.String())
}

// shortDay writes a YYYY-MM-DD day as "4 Dec".
func shortDay(day string) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return t.Format("2 Jan")
}

// salesCharts turns a daily series into the dashboard's two charts (the
// amount in the currency sold most, and orders in every currency) and
// the table that says the same.
func salesCharts(series []projections.LocalDaySales) (amount, orders chartHTML, rows []chartRow, currency string) {
	totals := map[string]int64{}
	for _, d := range series {
		if d.Currency != "" {
			totals[d.Currency] += d.Amount
		}
	}
	for c, t := range totals {
		if currency == "" || t > totals[currency] || (t == totals[currency] && c < currency) {
			currency = c
		}
	}
	var labels []string
	var amounts, counts []int64
	for _, d := range series {
		if len(labels) == 0 || labels[len(labels)-1] != d.Day {
			labels = append(labels, d.Day)
			amounts = append(amounts, 0)
			counts = append(counts, 0)
			rows = append(rows, chartRow{Day: d.Day})
		}
		i := len(labels) - 1
		counts[i] += d.Orders
		rows[i].Orders += d.Orders
		if d.Currency == "" {
			continue
		}
		if d.Currency == currency {
			amounts[i] += d.Amount
		}
		if rows[i].Amount != "" {
			rows[i].Amount += ", "
		}
		rows[i].Amount += money(d.Amount, d.Currency)
	}
	for i := range rows {
		if rows[i].Amount == "" {
			rows[i].Amount = "nothing sold"
		}
	}
	if len(labels) == 0 {
		return "", "", nil, currency
	}
	span := fmt.Sprintf("%s to %s", shortDay(labels[0]), shortDay(labels[len(labels)-1]))
	cur := currency
	if cur == "" {
		cur = "any currency"
	}
	amount = barChart("sales-amount", "Sales per day in "+cur+", "+span,
		"Bars give each day's order value in "+cur+", canceled orders left out; the table below lists every day.",
		colorBar, labels, amounts, func(v int64) string { return money(v, currency) })
	orders = barChart("sales-orders", "Orders per day, "+span,
		"Bars give the number of orders placed each day, canceled orders left out; the table below lists every day.",
		colorOrders, labels, counts, func(v int64) string { return number(v) })
	return amount, orders, rows, currency
}

// stockPoint is a movement on a stock chart: the balance after it.
type stockPoint struct {
	At      time.Time
	Delta   int64
	Balance int64
	Reason  string
}

// stockChart draws a variant's balance over [from, to] as a step line
// from the balance at from, marking sales (circles) and restocks
// (triangles), with the low-stock line dashed.
func stockChart(id, title string, from, to time.Time, start int64, points []stockPoint, threshold int64, loc *time.Location) chartHTML {
	lo, hi := min(int64(0), start), max(start, threshold, 1)
	sales, restocks := 0, 0
	for _, p := range points {
		lo, hi = min(lo, p.Balance), max(hi, p.Balance)
		if p.Reason == projections.ReasonSale {
			sales++
		} else if p.Delta > 0 {
			restocks++
		}
	}
	// Days on the axis, or the time of day too when the chart spans
	// less than two days.
	day, axis := "2 Jan 2006", "2 Jan"
	if to.Sub(from) < 48*time.Hour {
		day, axis = "2 Jan 2006 15:04", "2 Jan 15:04"
	}
	desc := fmt.Sprintf("Step line of the balance from %d on %s to %d on %s; %d sales marked with circles, %d restocks with triangles; dashed line: the low-stock line at %d.",
		start, from.In(loc).Format(day), lastBalance(start, points), to.In(loc).Format(day), sales, restocks, threshold)
	var b svgBuilder
	b.open(id, title, desc, stockW, stockH)
	chartW, chartH := b.w, b.h
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		if span <= 0 {
			return padL
		}
		return padL + plotW*t.Sub(from).Seconds()/span
	}
	y := func(v int64) float64 { return padT + plotH*float64(hi-v)/float64(hi-lo) }
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, padL, y(lo), chartW-padR, y(lo), colorGrid)
	if lo < 0 {
		b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, padL, y(0), chartW-padR, y(0), colorText)
	}
	b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4"><title>Low-stock line: %d</title></line>`,
		padL, y(threshold), chartW-padR, y(threshold), colorSale, threshold)
	for _, v := range []int64{hi, lo} {
		b.f(`<text x="%.1f" y="%.1f" font-size="14" text-anchor="end" fill="%s">%d</text>`, padL-6, y(v)+4, colorText, v)
	}
	if lo < 0 {
		b.f(`<text x="%.1f" y="%.1f" font-size="14" text-anchor="end" fill="%s">0</text>`, padL-6, y(0)+4, colorText)
	}
	b.f(`<text x="%.1f" y="%.1f" font-size="13" fill="%s">%s</text>`, padL, chartH-8, colorText, esc(from.In(loc).Format(axis)))
	b.f(`<text x="%.1f" y="%.1f" font-size="13" text-anchor="end" fill="%s">%s</text>`, chartW-padR, chartH-8, colorText, esc(to.In(loc).Format(axis)))
	var path strings.Builder
	fmt.Fprintf(&path, "M%.1f %.1f", x(from), y(start))
	for _, p := range points {
		fmt.Fprintf(&path, " H%.1f V%.1f", x(p.At), y(p.Balance))
	}
	fmt.Fprintf(&path, " H%.1f", x(to))
	b.f(`<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`, path.String(), colorLine)
	for _, p := range points {
		label := fmt.Sprintf("%s: %+d (%s), balance %d", p.At.In(loc).Format("2 Jan 2006 15:04"), p.Delta, p.Reason, p.Balance)
		px, py := x(p.At), y(p.Balance)
		switch {
		case p.Reason == projections.ReasonSale:
			b.f(`<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s</title></circle>`, px, py, colorSale, esc(label))
		case p.Delta > 0:
			b.f(`<path d="M%.1f %.1f l5 8 h-10 z" fill="%s"><title>%s</title></path>`, px, py-5, colorIn, esc(label))
		}
	}
	b.f(`</svg>`)
	return chartHTML(b.String())
}

func lastBalance(start int64, points []stockPoint) int64 {
	if len(points) == 0 {
		return start
	}
	return points[len(points)-1].Balance
}
