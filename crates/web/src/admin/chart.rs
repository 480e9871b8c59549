//! The dashboard's chart, drawn on the server as SVG: no script, no
//! library, readable by a screen reader through its table twin.

use domain::sales::DailyRevenue;

use crate::render::money;

pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub label: String,
    pub value: String,
    /// Axis label under the bar (every few bars).
    pub tick: Option<String>,
    pub tick_x: String,
}

pub struct BarChart {
    pub width: u32,
    pub height: u32,
    pub baseline: String,
    pub bars: Vec<Bar>,
    pub max_label: String,
    pub total: String,
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 220;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

impl BarChart {
    pub fn daily_revenue(days: &[DailyRevenue]) -> BarChart {
        let max = days.iter().map(|d| d.revenue_cents).max().unwrap_or(0).max(1);
        let plot_width = f64::from(WIDTH) - LEFT - 8.0;
        let plot_height = f64::from(HEIGHT) - BOTTOM - TOP;
        let slot = plot_width / days.len().max(1) as f64;
        let every = (days.len() / 6).max(1);
        let bars = days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let h = day.revenue_cents.max(0) as f64 / max as f64 * plot_height;
                let x = LEFT + slot * i as f64 + slot * 0.15;
                Bar {
                    x: format!("{x:.1}"),
                    y: format!("{:.1}", TOP + plot_height - h),
                    width: format!("{:.1}", slot * 0.7),
                    height: format!("{h:.1}"),
                    label: day.day.format("%d %b").to_string(),
                    value: money(day.revenue_cents, "EUR"),
                    tick: (i % every == 0).then(|| day.day.format("%d %b").to_string()),
                    tick_x: format!("{:.1}", x + slot * 0.35),
                }
            })
            .collect();
        BarChart {
            width: WIDTH,
            height: HEIGHT,
            baseline: format!("{:.1}", TOP + plot_height),
            bars,
            max_label: money(max, "EUR"),
            total: money(days.iter().map(|d| d.revenue_cents).sum(), "EUR"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_best_day() {
        let day = |d: u32, cents| DailyRevenue {
            day: chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap_or_default(),
            revenue_cents: cents,
        };
        let chart = BarChart::daily_revenue(&[day(1, 0), day(2, 500), day(3, 1000)]);
        assert_eq!(chart.bars.len(), 3);
        assert_eq!(chart.bars[0].height, "0.0");
        assert_eq!(
            chart.bars[2].height,
            format!("{:.1}", f64::from(HEIGHT) - BOTTOM - TOP)
        );
        assert_eq!(chart.total, "€15.00");
        assert_eq!(chart.max_label, "€10.00");
    }
}
