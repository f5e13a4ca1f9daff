//! CSV exports the finance office opens in Excel or LibreOffice (settlement statements, the
//! bureau's look-ups): one writer, so every export keeps identifiers as text, writes amounts
//! with two decimals and neutralises formulas the same way.
//!
//! - UTF-8 with a byte-order mark: without it Excel reads the Chinese as GBK.
//! - Identifiers (USCC, invoice, contract and voucher numbers) are written with a leading tab.
//!   Excel and LibreOffice then keep the cell as text, so `914403064427429XXX` stays whole and
//!   `000120260000` keeps its zeros; `="..."` would be a formula, and a leading apostrophe shows
//!   as a character in a CSV. A program reading the file strips the tab (`trim_start`).
//! - Any other text that begins with `=`, `+`, `-`, `@`, tab or carriage return gets a leading
//!   apostrophe (OWASP, "CSV Injection"), so `=HYPERLINK(...)` is shown, never run. An
//!   identifier that begins with one of them gets the apostrophe instead of the tab.
//! - Amounts are numbers with exactly two decimals (`1500.00`), never text, so they add up.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::Money;

/// An instant as the export shows it: `2026-11-22 07:17:05`, Asia/Shanghai.
pub fn local_time(at: OffsetDateTime) -> String {
    at.to_offset(crate::state::SHANGHAI)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// A file to save: its type and the name to save it under.
pub fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// The content type of the CSV exports.
pub const CSV_TYPE: &str = "text/csv; charset=utf-8";
/// The content type of the XLSX exports.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Free text (names, statuses, dates).
    Text(String),
    /// An identifier that must stay text (USCC, invoice number, code).
    Id(String),
    /// An amount in CNY.
    Amount(Money),
    /// A count.
    Count(i64),
    /// Nothing.
    Empty,
}

/// The characters that make a spreadsheet read a cell as a formula (OWASP).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `text` would be read as a formula by a spreadsheet.
pub fn is_formula_like(text: &str) -> bool {
    text.starts_with(FORMULA_START)
}

impl Cell {
    /// The cell as written into a CSV field.
    pub fn csv_text(&self) -> String {
        match self {
            Cell::Text(t) if is_formula_like(t) => format!("'{t}"),
            Cell::Text(t) => t.clone(),
            Cell::Id(t) if is_formula_like(t) => format!("'{t}"),
            Cell::Id(t) if t.is_empty() => String::new(),
            Cell::Id(t) => format!("\t{t}"),
            Cell::Amount(m) => m.to_string(),
            Cell::Count(n) => n.to_string(),
            Cell::Empty => String::new(),
        }
    }
}

/// The rows as CSV bytes: the BOM, the header row, then each row.
pub fn csv(headers: &[&str], rows: &[Vec<Cell>]) -> anyhow::Result<Vec<u8>> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = ::csv::WriterBuilder::new()
            .quote_style(::csv::QuoteStyle::Necessary)
            .from_writer(&mut out);
        w.write_record(headers)?;
        for row in rows {
            w.write_record(row.iter().map(Cell::csv_text))?;
        }
        w.flush()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_stay_text_and_formulas_are_neutralised() {
        let cases = [
            (Cell::Id("000120260000".into()), "\t000120260000"),
            (Cell::Id("=1+1".into()), "'=1+1"),
            (Cell::Id(String::new()), ""),
            (Cell::Text("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")"),
            (Cell::Text("+86".into()), "'+86"),
            (Cell::Text("-1".into()), "'-1"),
            (Cell::Text("@SUM(A1)".into()), "'@SUM(A1)"),
            (Cell::Text("\tx".into()), "'\tx"),
            (Cell::Text("\rx".into()), "'\rx"),
            (Cell::Text("测试企业".into()), "测试企业"),
            (Cell::Amount(Money::from_yuan(1500)), "1500.00"),
            (Cell::Count(3), "3"),
        ];
        for (cell, want) in cases {
            assert_eq!(cell.csv_text(), want, "{cell:?}");
        }
    }

    #[test]
    fn the_file_starts_with_a_byte_order_mark() {
        let bytes = csv(&["a"], &[vec![Cell::Id("1".into())]]).unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()));
    }
}
