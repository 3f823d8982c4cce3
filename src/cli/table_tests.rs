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
