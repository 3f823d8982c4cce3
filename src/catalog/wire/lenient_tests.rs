use super::*;

#[test]
fn messages_are_serde_json_words() {
    assert_eq!(
        invalid_type(Unexpected::Unit, "a string"),
        "invalid type: null, expected a string"
    );
    assert_eq!(
        invalid_type(Unexpected::Float(1.0), "a sequence"),
        "invalid type: floating point `1.0`, expected a sequence"
    );
    assert_eq!(
        too_long(3),
        "invalid length 3, expected fewer elements in array"
    );
}

#[test]
fn a_key_given_again_keeps_its_first_place() {
    let mut order = Order::<3>::new();
    for field in [2, 0, 2, 1, 0] {
        order.note(field);
    }
    let (a, b) = ("a".to_owned(), "b".to_owned());
    assert_eq!(
        order.first_error([Some(&a), None, Some(&b)]),
        Some(b.clone())
    );
    assert_eq!(order.first_error([Some(&a), Some(&b), None]), Some(a));
    assert_eq!(order.first_error([None, None, None]), None);
}
