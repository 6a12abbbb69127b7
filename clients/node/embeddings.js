#!/usr/bin/env node
// Submits an embeddings job to asyncgate over gRPC, waits for it, reads the vectors, and
// prints a JSON summary on stdout. The client is built at run time from the protos with
// @grpc/proto-loader: nothing is generated or checked in.
//
//   python scripts/gen_protos.py --include-dir build/include     # the google/* imports
//   node clients/node/embeddings.js --target 127.0.0.1:50051 \
//       --include-dir build/include --dimensions 16 --input "a cat" --input "a dog"
//
// Exit codes: 0 completed, 1 the job failed, 2 bad arguments, 3 a gRPC call failed.
"use strict";

const path = require("node:path");
const { parseArgs } = require("node:util");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const USAGE = `usage: node embeddings.js --target HOST:PORT --include-dir DIR [--protos DIR]
       [--model PROVIDER/MODEL] [--dimensions N] [--key VIRTUAL_KEY] --input TEXT [--input TEXT ...]`;
const TERMINAL = new Set(["JOB_STATUS_COMPLETED", "JOB_STATUS_FAILED"]);
const POLL_INTERVAL_MS = 100;
const CALL_DEADLINE_MS = 30_000;

function options() {
  const { values } = parseArgs({
    options: {
      target: { type: "string" },
      "include-dir": { type: "string" },
      protos: { type: "string", default: path.join(__dirname, "..", "..", "protos") },
      model: { type: "string", default: "local/hashing" },
      dimensions: { type: "string" },
      key: { type: "string" },
      input: { type: "string", multiple: true },
    },
  });
  const missing = ["target", "include-dir", "input"].filter((name) => values[name] === undefined);
  if (missing.length > 0) {
    throw new UsageError(`missing --${missing.join(", --")}`);
  }
  if (values.dimensions !== undefined && !/^[1-9][0-9]*$/.test(values.dimensions)) {
    throw new UsageError(`--dimensions must be a positive integer, got ${JSON.stringify(values.dimensions)}`);
  }
  return values;
}

class UsageError extends Error {}

function loadJobService(protosDir, includeDir) {
  const definition = protoLoader.loadSync("asyncgate/v1/job_service.proto", {
    includeDirs: [protosDir, includeDir],
    keepCase: true, // field names as the protos spell them (snake_case)
    enums: String,
    longs: String, // int64 as decimal strings: no precision lost
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).asyncgate.v1.JobService;
}

// One unary call as a promise, with a deadline and the caller's metadata.
function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + CALL_DEADLINE_MS);
    client[method](request, metadata, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

async function waitForJob(client, id, metadata) {
  for (;;) {
    const { job } = await unary(
      client,
      "GetJob",
      { id, request_type: "REQUEST_TYPE_EMBEDDING" },
      metadata,
    );
    if (TERMINAL.has(job.status)) {
      return job;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

function readOutput(client, jobId, stored, metadata) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const deadline = new Date(Date.now() + CALL_DEADLINE_MS);
    const request = { job_id: jobId, index: stored.index, access_token: stored.access_token };
    const stream = client.ReadJobOutput(request, metadata, { deadline });
    stream.on("data", (message) => chunks.push(message.chunk));
    stream.on("error", reject);
    stream.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

// count x dimensions little-endian float32 values, row by row (EmbeddingResult.vectors).
function vectors(raw, count, dimensions) {
  if (raw.length !== count * dimensions * 4) {
    throw new Error(`vectors are ${raw.length} bytes, expected ${count} x ${dimensions} x 4`);
  }
  const rows = [];
  for (let row = 0; row < count; row++) {
    const values = [];
    for (let column = 0; column < dimensions; column++) {
      values.push(raw.readFloatLE((row * dimensions + column) * 4));
    }
    rows.push(values);
  }
  return rows;
}

async function main() {
  const args = options();
  const JobService = loadJobService(args.protos, args["include-dir"]);
  const client = new JobService(args.target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (args.key !== undefined) {
    metadata.set("x-bf-vk", args.key);
  }
  try {
    const request = {
      model: args.model,
      input: { texts: { values: args.input } },
      encoding_format: "ENCODING_FORMAT_FLOAT",
    };
    if (args.dimensions !== undefined) {
      request.dimensions = Number(args.dimensions);
    }
    const created = await unary(client, "CreateEmbeddingJob", { request }, metadata);
    const job = await waitForJob(client, created.job.id, metadata);
    if (job.status !== "JOB_STATUS_COMPLETED") {
      console.log(JSON.stringify({ job_id: job.id, status: job.status, error: job.error }));
      return 1;
    }
    const result = job.embedding_result;
    const raw = await readOutput(client, job.id, result.vectors, metadata);
    const rows = vectors(raw, result.count, result.dimensions);
    const summary = {
      job_id: job.id,
      status: job.status,
      model: result.model,
      count: result.count,
      dimensions: result.dimensions,
      bytes: raw.length,
      vectors: rows,
    };
    console.log(JSON.stringify(summary));
    return 0;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    if (error instanceof UsageError || String(error.code).startsWith("ERR_PARSE_ARGS")) {
      console.error(`${error.message}\n${USAGE}`);
      process.exitCode = 2;
    } else if (error.code !== undefined && error.details !== undefined) {
      console.error(`gRPC call failed: ${grpc.status[error.code]}: ${error.details}`);
      process.exitCode = 3;
    } else {
      console.error(error.stack || String(error));
      process.exitCode = 3;
    }
  },
);
