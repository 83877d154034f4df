//! Helpers shared by the root tests inside the crate.

/// True when the test may run; false (after saying so) without root. With
/// SWARMNET_REQUIRE_ROOT_TESTS=1 (as scripts/test sets) a missing root fails.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("SWARMNET_REQUIRE_ROOT_TESTS").as_deref(),
        Ok("1"),
        "this test needs root and SWARMNET_REQUIRE_ROOT_TESTS=1 is set"
    );
    eprintln!("skipped: needs root");
    false
}
