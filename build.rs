//! refinery embeds `sql/<backend>/` with `include_str!`, which notices edits to existing files but not a new
//! migration file; watching the directory makes a new `V*__*.sql` rebuild the binary.
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
