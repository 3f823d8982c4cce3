use super::*;

#[test]
fn aligns_columns_by_characters() {
    let mut t = Table::new(&["CITY", "RTT"]);
    t.row(vec!["São Paulo".into(), "12.0".into()]);
    t.row(vec!["Oslo".into(), "3.1".into()]);
    assert_eq!(
        t.render(),
        "CITY       RTT\nSão Paulo  12.0\nOslo       3.1\n"
    );
}

#[test]
fn fit_shortens_the_widest_shrinkable_column_with_an_ellipsis() {
    let mut t = Table::new(&["RANK", "CITY", "PROVIDER", "SCORE"]);
    t.row(vec![
        "1".into(),
        "Santa Cruz de la Sierra, Bolivia".into(),
        "Amazon Web Services".into(),
        "1234.5".into(),
    ]);
    t.row(vec!["2".into(), "Oslo".into(), "GCP".into(), "7.0".into()]);
    t.fit(40, &[1, 2]);
    let text = t.render();
    for line in text.lines() {
        assert!(line.chars().count() <= 40, "{line:?} in\n{text}");
    }
    assert!(text.contains('…'), "{text}");
    assert!(text.contains("1234.5"), "numbers are never cut: {text}");
    assert!(text.contains("Oslo "), "short cells stay whole: {text}");
    // The two shrinkable columns were cut to within one character of each other.
    let first = text.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with("1     Santa Cruz"), "{first:?}");
}

#[test]
fn fit_leaves_a_table_that_fits_alone() {
    let mut t = Table::new(&["CITY", "RTT"]);
    t.row(vec!["São Paulo".into(), "12.0".into()]);
    let before = t.render();
    t.fit(80, &[0]);
    assert_eq!(t.render(), before);
}

#[test]
fn fit_never_cuts_below_the_header() {
    let mut t = Table::new(&["CITY", "NUMBER"]);
    t.row(vec!["Frankfurt".into(), "123456789012".into()]);
    t.fit(10, &[0]);
    assert_eq!(t.render(), "CITY  NUMBER\nFra…  123456789012\n");
}
