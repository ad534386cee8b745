"""Jobs: one submission's grading, from the queue to the stored outcome.

The package, by file::

    state.py         JobState: queued, running, done, failed, not_gradable (the strings the
                     database and the JSON API hold)
    queue.py         the queue, in the database: claim, heartbeat, finish, take back
    policy.py        grade_job(): the one rule for grading one job, used by both runners
    runner.py        JobRunner: the face both runners show the service (start, notify, running, stop)
    pool.py          GradingPool: the in-process runner, grading threads in the service
    dispatcher.py    CeleryDispatcher: the fleet runner, sends jobs to the broker, stores the replies
    messages.py      GradeJobPayload and GradeJobReply: what crosses the broker, versioned
    broker.py        the Celery app, its queues per hardware class, the fleet view
    fleet_grader.py  the grading task and the process `cvgrade worker` runs on each fleet host

"Worker" in this tree means the candidate's sandboxed process (``harness/worker``). The only
other use is the command name ``cvgrade worker``, which starts a fleet grader
(``fleet_grader.py``); the operator's ``cvgrade fleet`` lists those as "workers".
"""
