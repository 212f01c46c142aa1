//! Every committed corpus input through its target, on stable Rust: the fuzz targets' own
//! assertions (both signature backends agree, the indexed decision equals the exhaustive one, …)
//! and no panic, for the seeds and for every input a campaign found and committed.

use std::fs;
use std::path::Path;

use warden_fuzz::targets::ALL;

#[test]
fn every_committed_input_replays_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut replayed = 0;
    for entry in fs::read_dir(&corpus).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, run)) = ALL.iter().find(|(target, _)| *target == name) else {
            panic!("fuzz/corpus/{name} names no fuzz target");
        };
        for input in fs::read_dir(&dir).unwrap() {
            let path = input.unwrap().path();
            let data = fs::read(&path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                panic!("{} fails its target: {panic:?}", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no corpus under {}", corpus.display());
}
