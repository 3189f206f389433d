"""Scheduler: turns cron schedules into runs, exactly once per fire time, with any number of replicas."""
