/*
 * layout.c - prints the size and field offsets of the structs the Python
 * binding mirrors (python/bulkup/_native.py), one line each:
 *   STRUCT sizeof N
 *   STRUCT FIELD OFFSET
 * test_layout.py compares them with ctypes. Built by tests/CMakeLists.txt
 * (bk_py_layout), or by the test itself with cc.
 */
#include <bulkup.h>

#include <stddef.h>
#include <stdio.h>

#define SIZE(s) printf(#s " sizeof %zu\n", sizeof(s))
#define FIELD(s, f) printf(#s " " #f " %zu\n", offsetof(s, f))

int main(void) {
  SIZE(bulkup_requests_settings);
  FIELD(bulkup_requests_settings, max_retries);
  FIELD(bulkup_requests_settings, backoff_factor);
  FIELD(bulkup_requests_settings, connection_retries);
  FIELD(bulkup_requests_settings, connect_timeout);
  FIELD(bulkup_requests_settings, read_timeout);
  FIELD(bulkup_requests_settings, write_timeout);

  SIZE(bulkup_cloud_upload_settings);
  FIELD(bulkup_cloud_upload_settings, max_retries_set);
  FIELD(bulkup_cloud_upload_settings, max_retries);
  FIELD(bulkup_cloud_upload_settings, backoff_factor_set);
  FIELD(bulkup_cloud_upload_settings, backoff_factor);
  FIELD(bulkup_cloud_upload_settings, allow_failures);

  SIZE(bulkup_backoff_settings);
  FIELD(bulkup_backoff_settings, max_delay);
  FIELD(bulkup_backoff_settings, retry_after_max);
  FIELD(bulkup_backoff_settings, jitter);

  SIZE(bulkup_item);
  FIELD(bulkup_item, source);
  FIELD(bulkup_item, path);
  FIELD(bulkup_item, data);
  FIELD(bulkup_item, size);
  FIELD(bulkup_item, read);
  FIELD(bulkup_item, read_ctx);
  FIELD(bulkup_item, url);
  FIELD(bulkup_item, title);
  FIELD(bulkup_item, data_type);
  FIELD(bulkup_item, content_type);
  FIELD(bulkup_item, cache_control);
  FIELD(bulkup_item, headers);
  FIELD(bulkup_item, user);
  FIELD(bulkup_item, journal_key);
  FIELD(bulkup_item, storage);

  SIZE(bulkup_progress);
  FIELD(bulkup_progress, submitted);
  FIELD(bulkup_progress, succeeded);
  FIELD(bulkup_progress, failed);
  FIELD(bulkup_progress, cancelled);
  FIELD(bulkup_progress, in_flight);
  FIELD(bulkup_progress, retries);
  FIELD(bulkup_progress, bytes_submitted);
  FIELD(bulkup_progress, bytes_sent);
  FIELD(bulkup_progress, bytes_succeeded);
  FIELD(bulkup_progress, elapsed_s);
  FIELD(bulkup_progress, concurrency);

  SIZE(bulkup_result);
  FIELD(bulkup_result, index);
  FIELD(bulkup_result, status);
  FIELD(bulkup_result, error);
  FIELD(bulkup_result, attempts);
  FIELD(bulkup_result, http_status);
  FIELD(bulkup_result, path);
  FIELD(bulkup_result, title);
  FIELD(bulkup_result, url);
  FIELD(bulkup_result, message);
  FIELD(bulkup_result, response_excerpt);
  FIELD(bulkup_result, response_excerpt_len);
  FIELD(bulkup_result, bytes_sent);
  FIELD(bulkup_result, size);
  FIELD(bulkup_result, elapsed_s);
  FIELD(bulkup_result, user);
  FIELD(bulkup_result, requests);
  FIELD(bulkup_result, resumable);

  SIZE(bulkup_summary);
  FIELD(bulkup_summary, submitted);
  FIELD(bulkup_summary, succeeded);
  FIELD(bulkup_summary, failed);
  FIELD(bulkup_summary, cancelled);
  FIELD(bulkup_summary, retries);
  FIELD(bulkup_summary, bytes_sent);
  FIELD(bulkup_summary, bytes_succeeded);
  FIELD(bulkup_summary, elapsed_s);

  SIZE(bulkup_uploader_options);
  FIELD(bulkup_uploader_options, workers);
  FIELD(bulkup_uploader_options, queue_capacity);
  FIELD(bulkup_uploader_options, requests);
  FIELD(bulkup_uploader_options, cloud);
  FIELD(bulkup_uploader_options, backoff);
  FIELD(bulkup_uploader_options, ca_file);
  FIELD(bulkup_uploader_options, insecure);
  FIELD(bulkup_uploader_options, content_md5);
  FIELD(bulkup_uploader_options, expect_continue);
  FIELD(bulkup_uploader_options, retry_budget);
  FIELD(bulkup_uploader_options, retry_budget_tokens);
  FIELD(bulkup_uploader_options, upload_buffer_size);
  FIELD(bulkup_uploader_options, user_agent);
  FIELD(bulkup_uploader_options, on_complete);
  FIELD(bulkup_uploader_options, on_progress);
  FIELD(bulkup_uploader_options, progress_interval);
  FIELD(bulkup_uploader_options, log);
  FIELD(bulkup_uploader_options, log_level);
  FIELD(bulkup_uploader_options, refresh_url);
  FIELD(bulkup_uploader_options, journal);
  FIELD(bulkup_uploader_options, userdata);
  FIELD(bulkup_uploader_options, threads);
  FIELD(bulkup_uploader_options, resumable_threshold);
  FIELD(bulkup_uploader_options, resumable_chunk_size);
  FIELD(bulkup_uploader_options, no_progress_limit);
  FIELD(bulkup_uploader_options, sign_request);
  FIELD(bulkup_uploader_options, sign_userdata);
  FIELD(bulkup_uploader_options, sign_payload);
  FIELD(bulkup_uploader_options, sign_crc32c);
  FIELD(bulkup_uploader_options, workers_max);
  FIELD(bulkup_uploader_options, http_version);
  FIELD(bulkup_uploader_options, multipart_threshold);
  FIELD(bulkup_uploader_options, part_size);

  SIZE(bulkup_api_options);
  FIELD(bulkup_api_options, base_url);
  FIELD(bulkup_api_options, key_id);
  FIELD(bulkup_api_options, key_file);
  FIELD(bulkup_api_options, key_pem);
  FIELD(bulkup_api_options, key_pem_len);
  FIELD(bulkup_api_options, requests);
  FIELD(bulkup_api_options, backoff);
  FIELD(bulkup_api_options, ca_file);
  FIELD(bulkup_api_options, insecure);
  FIELD(bulkup_api_options, user_agent);
  FIELD(bulkup_api_options, max_response_size);
  FIELD(bulkup_api_options, log);
  FIELD(bulkup_api_options, log_level);
  FIELD(bulkup_api_options, userdata);

  SIZE(bulkup_workflow_options);
  FIELD(bulkup_workflow_options, dataset_hash);
  FIELD(bulkup_workflow_options, folder_uuid);
  FIELD(bulkup_workflow_options, title);
  FIELD(bulkup_workflow_options, create_video);
  FIELD(bulkup_workflow_options, files_per_job);
  FIELD(bulkup_workflow_options, poll_timeout);
  FIELD(bulkup_workflow_options, upload);
  return 0;
}
