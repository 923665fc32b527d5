from groundsearch.cli import main

# The guard matters: the corpus readers' process pool may start workers with "forkserver", which re-imports
# the main module.
if __name__ == "__main__":
    main()
