try:
    from evalsuite.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line is imported: the interrupted exit code too
    import sys

    print("evalsuite: interrupted", file=sys.stderr)
    exec("")  # CPython forgets the interrupt as handled (see evalsuite.exitcodes.forget_handled_interrupt)
    raise SystemExit(130) from None

raise SystemExit(main())
