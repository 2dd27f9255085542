"""Entry point Azure ML runs: `python train.py --task images --data ... --model-dir ...`
(or under torchrun / mpirun). See trainkit/engine.py; `python train.py --help`."""

from trainkit.engine import leave, main

if __name__ == "__main__":
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack into this rank's log (a hang)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    leave(main())  # sys.exit(main()), but see leave() for a rank of a distributed run
