"""Recipe: poll a ModelStudio batch job to completion without sleeping."""


def wait_for_job(get_job, *, sleep, interval=2.0, timeout=600.0):
    """The client under test: poll every ``interval`` seconds until the job is completed or failed."""
    waited = 0.0
    while (job := get_job())["job_status"] not in ("completed", "failed"):
        if waited >= timeout:
            raise TimeoutError(job)
        sleep(interval)
        waited += interval
    return job


def test_batch_job_is_polled_to_completion(aigen_mock):
    studio = aigen_mock.provider("modelstudio")
    jobs = f"/api/v1/organizations/{studio.organization_id}/generate"
    conversations = [[{"role": "user", "content": "Hello"}], [{"role": "user", "content": "mock:fail"}]]
    body = {"model_id": "ms-demo-chat", "messages": conversations}
    job_id = aigen_mock.post("modelstudio", jobs, json=body).json()["job_id"]

    job = wait_for_job(
        lambda: aigen_mock.get("modelstudio", f"{jobs}/{job_id}").json(),
        sleep=aigen_mock.advance,  # each poll interval passes on the mock's clock, at once
    )
    assert job["job_status"] == "completed"
    assert [task["status"] for task in job["results"]] == ["completed", "failed"]  # "mock:fail" fails a task
    polls = [e for e in aigen_mock.journal("modelstudio") if e["operation_id"] == "getGenerationJob"]
    assert 1 < len(polls) <= 5
