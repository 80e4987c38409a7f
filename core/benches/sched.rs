//! Queue operations the scheduler is built on (crossbeam-deque), in ns per operation.
//! Figures, not tests: `cargo bench -p corral --bench sched`.

use std::hint::black_box;
use std::time::Instant;

use crossbeam_deque::{Injector, Steal, Worker};

const OPS: usize = 2_000_000;

fn report(name: &str, ops: usize, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    let ns = t.elapsed().as_nanos() as f64 / ops as f64;
    println!("{name:<48} {ns:>8.1} ns/op");
}

fn main() {
    println!("crossbeam-deque operations, best of 3 runs each\n");
    for _ in 0..3 {
        report("FIFO push+pop (batches of 64)", OPS, || {
            let w = Worker::new_fifo();
            for _ in 0..OPS / 64 {
                for i in 0..64 {
                    w.push(i);
                }
                for _ in 0..64 {
                    black_box(w.pop());
                }
            }
        });
        report("Stealer::steal, uncontended", OPS, || {
            let w = Worker::new_fifo();
            let s = w.stealer();
            for _ in 0..OPS / 64 {
                for i in 0..64 {
                    w.push(i);
                }
                for _ in 0..64 {
                    let _ = black_box(s.steal());
                }
            }
        });
        report("steal_batch_and_pop FIFO->FIFO, per task moved", OPS, || {
            let a = Worker::new_fifo();
            let b = Worker::new_fifo();
            let s = a.stealer();
            let mut moved = 0;
            while moved < OPS {
                for i in 0..64 {
                    a.push(i);
                }
                while let Steal::Success(t) = s.steal_batch_and_pop(&b) {
                    black_box(t);
                    moved += 1;
                    while let Some(t) = b.pop() {
                        black_box(t);
                        moved += 1;
                    }
                }
            }
        });
        report("Injector push+steal, one thread", OPS, || {
            let inj = Injector::new();
            for _ in 0..OPS / 64 {
                for i in 0..64 {
                    inj.push(i);
                }
                for _ in 0..64 {
                    let _ = black_box(inj.steal());
                }
            }
        });
        report("Injector, one producer thread + one consumer", OPS, || {
            let inj = std::sync::Arc::new(Injector::new());
            let p = std::sync::Arc::clone(&inj);
            let producer = std::thread::spawn(move || {
                for i in 0..OPS {
                    p.push(i);
                }
            });
            let mut got = 0;
            while got < OPS {
                if let Steal::Success(t) = inj.steal() {
                    black_box(t);
                    got += 1;
                }
            }
            producer.join().unwrap();
        });
        println!();
    }
}
