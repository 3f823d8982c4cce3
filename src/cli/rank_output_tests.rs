use super::*;

#[test]
fn csv_quotes_only_when_needed() {
    assert_eq!(csv_field("Ashburn, Virginia"), "\"Ashburn, Virginia\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("Oslo"), "Oslo");
}
