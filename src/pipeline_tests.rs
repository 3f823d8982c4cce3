use super::*;

#[test]
fn the_jobs_run_every_stage_once_in_cycle_order() {
    let flat: Vec<Stage> = JOBS.iter().flat_map(|job| job.iter().copied()).collect();
    assert_eq!(flat, Stage::ALL);
}
