package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unaryInterceptor counts the call and turns a handler panic into
// codes.Internal.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(ctx, info.FullMethod, r)
			resp = nil
		}
		s.rpcs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	}()
	return handler(ctx, req)
}

// streamInterceptor is unaryInterceptor for streams.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(ss.Context(), info.FullMethod, r)
		}
		s.rpcs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	}()
	return handler(srv, ss)
}

// recovered logs a handler panic (value type and stack only: the value may
// hold request data) and returns the error sent to the caller.
func (s *Server) recovered(ctx context.Context, method string, r any) error {
	s.panics.Inc()
	s.log.ErrorContext(ctx, "grpc handler panicked",
		slog.String("method", method),
		slog.String("panic_type", fmt.Sprintf("%T", r)),
		slog.String("stack", string(debug.Stack())))
	return status.Error(codes.Internal, "internal error")
}
