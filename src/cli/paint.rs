//! How prov paints its reports for a terminal, shared by the renderers of `show` and `log`.

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};

use crate::record::manifest::BuildStatus;

/// Colour only on a terminal, and never with NO_COLOR set.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn for_stdout() -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Paint(terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
    }

    fn paint(self, color: AnsiColor, text: &str) -> String {
        if self.0 {
            let style = Style::new().fg_color(Some(color.into())).bold();
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn good(self, text: &str) -> String {
        self.paint(AnsiColor::Green, text)
    }

    pub fn bad(self, text: &str) -> String {
        self.paint(AnsiColor::Red, text)
    }
}

pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0);
    format!("{}m{:02}s", secs / 60, secs % 60)
}

pub fn status_text(paint: Paint, status: BuildStatus) -> String {
    match status {
        BuildStatus::Success => paint.good("success"),
        BuildStatus::Failed => paint.bad("FAILED"),
    }
}
