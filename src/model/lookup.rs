//! Finding an object as Docker does: by full ID, then by name, then by a
//! unique ID prefix; more than one match is an error that says so.

use super::ApiError;

/// The one object `query` names among `items`.
pub fn find<'a, T>(
    items: &'a [T],
    query: &str,
    kind: &str,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
    not_found: impl FnOnce() -> ApiError,
) -> Result<&'a T, ApiError> {
    if let Some(item) = items.iter().find(|i| id(i) == query) {
        return Ok(item);
    }
    let ambiguous = |n: usize, what: &str| {
        ApiError::InvalidArgument(format!(
            "{kind} {query} is ambiguous ({n} matches); use {what}"
        ))
    };
    let by_name: Vec<_> = items.iter().filter(|i| name(i) == query).collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => return Err(ambiguous(many.len(), &format!("the {kind} ID"))),
    }
    let by_prefix: Vec<_> = if query.is_empty() {
        Vec::new()
    } else {
        items.iter().filter(|i| id(i).starts_with(query)).collect()
    };
    match by_prefix.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        many => Err(ambiguous(many.len(), &format!("more of the {kind} ID"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_in<'a>(
        items: &'a [(&'a str, &'a str)],
        q: &str,
    ) -> Result<&'a (&'a str, &'a str), ApiError> {
        find(
            items,
            q,
            "node",
            |i| i.0,
            |i| i.1,
            || ApiError::NotFound(format!("No such node: {q}")),
        )
    }

    #[test]
    fn id_then_name_then_unique_prefix() {
        let items = [("abc1", "vm1"), ("abd2", "vm2"), ("vm1", "other")];
        assert_eq!(find_in(&items, "vm1").unwrap().1, "other");
        assert_eq!(find_in(&items, "vm2").unwrap().0, "abd2");
        assert_eq!(find_in(&items, "abd").unwrap().0, "abd2");
        assert!(matches!(
            find_in(&items, "ab"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert_eq!(
            find_in(&items, "zz"),
            Err(ApiError::NotFound("No such node: zz".into()))
        );
        assert!(find_in(&items, "").is_err());
        let dup = [("a1", "vm"), ("b2", "vm")];
        assert!(find_in(&dup, "vm")
            .unwrap_err()
            .to_string()
            .contains("ambiguous (2 matches)"));
    }
}
