//! The statements as the finance office files them: a statement's lines and a month's summary
//! of every platform, as CSV (`voucher_core::export`) and XLSX.
//!
//! The workbook is laid out to be read and printed without touching it: the statement's month,
//! platform, status, approver and payer above the lines; column widths computed from the
//! widest value (a CJK character counts two); amounts as numbers in `¥#,##0.00`, identifiers as
//! text (`@`); the header row frozen, filtered and repeated on every printed page; a totals row;
//! landscape A4, fitted to one page wide.

use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, Worksheet, XlsxError};
use voucher_core::export::{self, Cell};
use voucher_core::{ApiError, Money};

use crate::views::{Line, Statement};

/// The lines' column headers (Chinese, for the finance office).
pub const LINE_HEADERS: [&str; 11] = [
    "平台名称",
    "平台统一社会信用代码",
    "企业名称",
    "企业统一社会信用代码",
    "消费券编码",
    "发票号",
    "合同号",
    "账期",
    "账单金额",
    "抵扣金额(补贴)",
    "核销时间",
];

/// The month summary's column headers: one row per platform's statement.
pub const SUMMARY_HEADERS: [&str; 11] = [
    "平台名称",
    "平台统一社会信用代码",
    "结算月份",
    "状态",
    "笔数",
    "账单金额",
    "抵扣金额(补贴)",
    "审核人",
    "审核时间",
    "付款凭证号",
    "付款时间",
];

/// A statement's status in Chinese.
pub fn status_label(status: &str) -> &str {
    match status {
        "draft" => "草稿",
        "approved" => "已审核",
        "paid" => "已付款",
        other => other,
    }
}

fn optional_time(at: Option<time::OffsetDateTime>) -> Cell {
    at.map(|t| Cell::Text(export::local_time(t)))
        .unwrap_or(Cell::Empty)
}

fn line_row(s: &Statement, l: &Line) -> Vec<Cell> {
    vec![
        Cell::Text(s.platform_name.clone()),
        Cell::Id(s.platform_uscc.clone()),
        Cell::Text(l.firm_name.clone()),
        Cell::Id(l.firm_uscc.clone()),
        Cell::Id(l.voucher_code.clone()),
        Cell::Id(l.invoice_no.clone()),
        Cell::Id(l.contract_no.clone().unwrap_or_default()),
        // `2026-11` would become a date in a spreadsheet.
        Cell::Id(l.billing_period.clone().unwrap_or_default()),
        Cell::Amount(l.bill_amount),
        Cell::Amount(l.discount),
        Cell::Text(export::local_time(l.created_at)),
    ]
}

fn sum(amounts: impl Iterator<Item = Money>) -> Money {
    amounts.fold(Money::ZERO, |acc, m| acc.checked_add(m).unwrap_or(acc))
}

fn lines_totals(count: usize, bills: Money, discounts: Money) -> Vec<Cell> {
    let mut row = vec![Cell::Empty; LINE_HEADERS.len()];
    row[0] = Cell::Text("合计".to_owned());
    row[5] = Cell::Text(format!("{count} 笔"));
    row[8] = Cell::Amount(bills);
    row[9] = Cell::Amount(discounts);
    row
}

/// A table: its headers, rows and totals row.
struct Table {
    headers: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
    totals: Vec<Cell>,
}

fn statement_table(s: &Statement) -> Table {
    Table {
        headers: &LINE_HEADERS,
        rows: s.lines.iter().map(|l| line_row(s, l)).collect(),
        totals: lines_totals(
            s.lines.len(),
            sum(s.lines.iter().map(|l| l.bill_amount)),
            s.total,
        ),
    }
}

fn month_lines_table(statements: &[Statement]) -> Table {
    let lines = || statements.iter().flat_map(|s| s.lines.iter());
    Table {
        headers: &LINE_HEADERS,
        rows: statements
            .iter()
            .flat_map(|s| s.lines.iter().map(move |l| line_row(s, l)))
            .collect(),
        totals: lines_totals(
            lines().count(),
            sum(lines().map(|l| l.bill_amount)),
            sum(statements.iter().map(|s| s.total)),
        ),
    }
}

fn summary_table(statements: &[Statement]) -> Table {
    let rows = statements
        .iter()
        .map(|s| {
            vec![
                Cell::Text(s.platform_name.clone()),
                Cell::Id(s.platform_uscc.clone()),
                Cell::Id(s.month.clone()),
                Cell::Text(status_label(&s.status).to_owned()),
                Cell::Count(s.lines.len() as i64),
                Cell::Amount(sum(s.lines.iter().map(|l| l.bill_amount))),
                Cell::Amount(s.total),
                Cell::Text(s.approved_by.clone().unwrap_or_default()),
                optional_time(s.approved_at),
                Cell::Id(s.payment_reference.clone().unwrap_or_default()),
                optional_time(s.paid_at),
            ]
        })
        .collect();
    let mut totals = vec![Cell::Empty; SUMMARY_HEADERS.len()];
    totals[0] = Cell::Text("合计".to_owned());
    totals[1] = Cell::Text(format!("{} 个平台", statements.len()));
    totals[4] = Cell::Count(statements.iter().map(|s| s.lines.len() as i64).sum());
    totals[5] = Cell::Amount(sum(statements
        .iter()
        .flat_map(|s| s.lines.iter().map(|l| l.bill_amount))));
    totals[6] = Cell::Amount(sum(statements.iter().map(|s| s.total)));
    Table {
        headers: &SUMMARY_HEADERS,
        rows,
        totals,
    }
}

fn csv_of(table: Table) -> Result<Vec<u8>, ApiError> {
    let mut rows = table.rows;
    rows.push(table.totals);
    Ok(export::csv(table.headers, &rows)?)
}

/// A statement's lines as CSV, with a totals row.
pub fn statement_csv(s: &Statement) -> Result<Vec<u8>, ApiError> {
    csv_of(statement_table(s))
}

/// A month's summary, one row per platform's statement, as CSV, with a totals row.
pub fn summary_csv(statements: &[Statement]) -> Result<Vec<u8>, ApiError> {
    csv_of(summary_table(statements))
}

fn fail(e: XlsxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("xlsx: {e}"))
}

/// How wide a text shows, in the widths of a digit: CJK and full-width characters take two.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| if (c as u32) >= 0x2E80 { 2 } else { 1 })
        .sum()
}

/// `¥1,234,567.89`, as the amount format shows it.
fn shown_amount(m: Money) -> String {
    let text = m.to_string();
    let (yuan, fen) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in yuan.chars().enumerate() {
        if i > 0 && (yuan.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("¥{grouped}.{fen}")
}

fn shown(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) | Cell::Id(t) => t.clone(),
        Cell::Amount(m) => shown_amount(*m),
        Cell::Count(n) => n.to_string(),
        Cell::Empty => String::new(),
    }
}

/// The formats of one workbook.
struct Formats {
    title: Format,
    label: Format,
    meta: Format,
    header: Format,
    text: Format,
    id: Format,
    amount: Format,
    count: Format,
    total_text: Format,
    total_amount: Format,
    total_count: Format,
}

/// The number format on amounts (the bureau's finance office asked for the yuan sign).
pub const AMOUNT_FORMAT: &str = "¥#,##0.00";

impl Formats {
    fn new() -> Formats {
        let total = || {
            Format::new()
                .set_bold()
                .set_border_top(FormatBorder::Thin)
                .set_background_color(Color::RGB(0xF2F2F2))
        };
        Formats {
            title: Format::new().set_bold().set_font_size(14),
            label: Format::new().set_bold(),
            meta: Format::new().set_num_format_index(49),
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xDDEBF7))
                .set_border(FormatBorder::Thin),
            text: Format::new(),
            id: Format::new().set_num_format_index(49), // "@", text
            amount: Format::new().set_num_format(AMOUNT_FORMAT),
            count: Format::new().set_num_format("#,##0"),
            total_text: total(),
            total_amount: total().set_num_format(AMOUNT_FORMAT),
            total_count: total().set_num_format("#,##0"),
        }
    }
}

fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    cell: &Cell,
    f: &Formats,
    total: bool,
) -> Result<(), ApiError> {
    match cell {
        Cell::Text(t) => {
            let format = if total { &f.total_text } else { &f.text };
            sheet
                .write_string_with_format(row, col, t, format)
                .map_err(fail)?;
        }
        Cell::Id(t) => {
            let format = if total { &f.total_text } else { &f.id };
            sheet
                .write_string_with_format(row, col, t, format)
                .map_err(fail)?;
        }
        Cell::Amount(m) => {
            // A number, so the spreadsheet adds it up; f64 holds every amount up to 10^13
            // yuan to the fen.
            let n = m.as_decimal().to_f64().unwrap_or_default();
            let format = if total { &f.total_amount } else { &f.amount };
            sheet
                .write_number_with_format(row, col, n, format)
                .map_err(fail)?;
        }
        Cell::Count(n) => {
            let format = if total { &f.total_count } else { &f.count };
            sheet
                .write_number_with_format(row, col, *n as f64, format)
                .map_err(fail)?;
        }
        Cell::Empty if total => {
            sheet.write_blank(row, col, &f.total_text).map_err(fail)?;
        }
        Cell::Empty => {}
    }
    Ok(())
}

/// Writes a sheet: a title, `meta` lines (label, value) above the table, the table with its
/// header and totals row, and the print and view set-up.
fn write_sheet(
    sheet: &mut Worksheet,
    name: &str,
    title: &str,
    meta: &[(&str, String)],
    table: &Table,
    f: &Formats,
) -> Result<(), ApiError> {
    sheet.set_name(name).map_err(fail)?;
    let columns = table.headers.len() as u16;
    let last_col = columns - 1;
    sheet
        .merge_range(0, 0, 0, last_col.min(5), title, &f.title)
        .map_err(fail)?;
    let mut r = 1u32;
    for (label, value) in meta {
        sheet
            .write_string_with_format(r, 0, *label, &f.label)
            .map_err(fail)?;
        // Across several columns, so a long platform name does not widen one column.
        sheet
            .merge_range(r, 1, r, last_col.min(5), value, &f.meta)
            .map_err(fail)?;
        r += 1;
    }
    let header_row = r + 1;
    for (c, h) in table.headers.iter().enumerate() {
        sheet
            .write_string_with_format(header_row, c as u16, *h, &f.header)
            .map_err(fail)?;
    }
    let mut row = header_row + 1;
    for cells in &table.rows {
        for (c, cell) in cells.iter().enumerate() {
            write_cell(sheet, row, c as u16, cell, f, false)?;
        }
        row += 1;
    }
    let last_line = row - 1;
    for (c, cell) in table.totals.iter().enumerate() {
        write_cell(sheet, row, c as u16, cell, f, true)?;
    }
    // Widths: the widest of the header and every value as shown, plus a margin for the filter
    // button.
    for c in 0..columns as usize {
        let widest = std::iter::once(display_width(table.headers[c]) + 3)
            .chain(
                table
                    .rows
                    .iter()
                    .chain(std::iter::once(&table.totals))
                    // Amounts get more room: a bold total is wider than its digits.
                    .map(|cells| match &cells[c] {
                        cell @ Cell::Amount(_) => display_width(&shown(cell)) + 4,
                        cell => display_width(&shown(cell)) + 2,
                    }),
            )
            .chain(
                (c == 0)
                    .then(|| meta.iter().map(|(l, _)| display_width(l) + 2))
                    .into_iter()
                    .flatten(),
            )
            .max()
            .unwrap_or(8)
            .clamp(8, 60);
        sheet
            .set_column_width(c as u16, widest as f64)
            .map_err(fail)?;
    }
    sheet.set_freeze_panes(header_row + 1, 0).map_err(fail)?;
    sheet
        .autofilter(header_row, 0, last_line.max(header_row), last_col)
        .map_err(fail)?;
    sheet.set_landscape();
    sheet.set_paper_size(9); // A4
    sheet.set_print_fit_to_pages(1, 0);
    sheet
        .set_repeat_rows(header_row, header_row)
        .map_err(fail)?;
    sheet.set_print_center_horizontally(true);
    sheet.set_footer("&C第 &P 页，共 &N 页");
    Ok(())
}

fn statement_meta(s: &Statement) -> Vec<(&'static str, String)> {
    let when = |at: Option<time::OffsetDateTime>| at.map(export::local_time).unwrap_or_default();
    vec![
        ("结算月份", s.month.clone()),
        (
            "平台",
            format!("{}（{}）", s.platform_name, s.platform_uscc),
        ),
        ("状态", status_label(&s.status).to_owned()),
        (
            "审核人",
            match &s.approved_by {
                Some(who) => format!("{who}  {}", when(s.approved_at)),
                None => "尚未审核".to_owned(),
            },
        ),
        (
            "付款",
            match &s.payment_reference {
                Some(reference) => format!("凭证号 {reference}  {}", when(s.paid_at)),
                None => "尚未付款".to_owned(),
            },
        ),
    ]
}

/// A statement's lines as an XLSX workbook, the statement's particulars above them.
pub fn statement_xlsx(s: &Statement) -> Result<Vec<u8>, ApiError> {
    let f = Formats::new();
    let mut book = Workbook::new();
    write_sheet(
        book.add_worksheet(),
        &s.month,
        &format!("宝安区上云上平台消费券结算单 {}", s.month),
        &statement_meta(s),
        &statement_table(s),
        &f,
    )?;
    book.save_to_buffer().map_err(fail)
}

/// A month's summary for finance: a sheet with one row per platform's statement, then a sheet
/// with every line of the month.
pub fn summary_xlsx(month: &str, statements: &[Statement]) -> Result<Vec<u8>, ApiError> {
    let f = Formats::new();
    let mut book = Workbook::new();
    let paid = statements.iter().filter(|s| s.status == "paid").count();
    let approved = statements.iter().filter(|s| s.status == "approved").count();
    let meta = vec![
        ("结算月份", month.to_owned()),
        (
            "状态",
            format!(
                "{} 张结算单：草稿 {}，已审核 {}，已付款 {}",
                statements.len(),
                statements.len() - paid - approved,
                approved,
                paid
            ),
        ),
    ];
    write_sheet(
        book.add_worksheet(),
        "汇总",
        &format!("宝安区上云上平台消费券月度结算汇总 {month}"),
        &meta,
        &summary_table(statements),
        &f,
    )?;
    write_sheet(
        book.add_worksheet(),
        "明细",
        &format!("宝安区上云上平台消费券核销明细 {month}"),
        &meta[..1],
        &month_lines_table(statements),
        &f,
    )?;
    book.save_to_buffer().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_grouped_with_the_yuan_sign() {
        for (m, want) in [
            ("0.00", "¥0.00"),
            ("100.50", "¥100.50"),
            ("1000.00", "¥1,000.00"),
            ("123456789.01", "¥123,456,789.01"),
        ] {
            assert_eq!(shown_amount(Money::parse(m).unwrap()), want);
        }
    }

    #[test]
    fn chinese_counts_twice_in_a_width() {
        assert_eq!(display_width("抵扣金额(补贴)"), 14);
        assert_eq!(display_width("BA26"), 4);
    }
}
